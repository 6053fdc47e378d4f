{{- /* Generated from deploy/rbac.yaml by `make generate`. Do not edit. */ -}}

{{- /* Rules of the ClusterRole on cluster-scoped resources. */}}
{{- define "jobsmith.rbac.clusterScopedRules" -}}
- apiGroups:
  - ''
  resources:
  - nodes
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - apiextensions.k8s.io
  resources:
  - customresourcedefinitions
  verbs:
  - get
  - list
  - watch
{{- end }}

{{- /* Rules of the ClusterRole on namespaced resources (a Role per watched namespace when watchNamespaces is set). */}}
{{- define "jobsmith.rbac.namespacedRules" -}}
- apiGroups:
  - jobsmith.dev
  resources:
  - managedjobs
  - jobflows
  - daemonjobs
  - jobtemplates
  - jobruns
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - jobsmith.dev
  resources:
  - managedjobs
  - jobflows
  verbs:
  - delete
- apiGroups:
  - jobsmith.dev
  resources:
  - managedjobs/status
  - jobflows/status
  - daemonjobs/status
  - jobtemplates/status
  - jobruns/status
  verbs:
  - get
  - patch
  - update
- apiGroups:
  - jobsmith.dev
  resources:
  - managedjobs/finalizers
  - jobflows/finalizers
  - daemonjobs/finalizers
  - jobruns/finalizers
  verbs:
  - update
- apiGroups:
  - batch
  resources:
  - jobs
  verbs:
  - get
  - list
  - watch
  - create
  - patch
  - delete
- apiGroups:
  - ''
  resources:
  - pods
  verbs:
  - get
  - list
- apiGroups:
  - events.k8s.io
  resources:
  - events
  verbs:
  - create
  - patch
{{- end }}

{{- /* Rules of the leader-election Role. */}}
{{- define "jobsmith.rbac.leaderElectionRules" -}}
- apiGroups:
  - coordination.k8s.io
  resources:
  - leases
  verbs:
  - get
  - list
  - watch
  - create
  - update
  - patch
{{- end }}
