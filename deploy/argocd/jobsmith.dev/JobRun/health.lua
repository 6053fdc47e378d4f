-- Argo CD health of a Jobsmith run: ManagedJob, JobFlow, DaemonJob and JobRun use this same
-- script (docs/gitops.md of the Jobsmith repository). It runs in Argo CD's sandbox for argocd-cm
-- scripts: base and table libraries only, no string library, so strings are only compared and
-- joined with `..`.
--
--   being deleted                              Progressing
--   no status yet, or status of an older spec  Progressing (the manager has not caught up)
--   Stalled=True (terminal failure, invalid)   Degraded
--   phase Failed                               Degraded
--   phase Succeeded                            Healthy
--   phase Suspended                            Suspended
--   phase Pending or Running                   Progressing (also while waiting for a template)
local hs = {}

local function find_condition(status, wanted)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

-- "<reason>: <message>" of a condition, without the parts it lacks; `fallback` when it has none.
local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local reason = c.reason or ""
  local message = c.message or ""
  if reason == "" and message == "" then
    return fallback
  end
  if reason == "" then
    return message
  end
  if message == "" then
    return reason
  end
  return reason .. ": " .. message
end

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted"
  return hs
end

local status = obj.status
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Jobsmith manager to observe the run"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Jobsmith manager to observe generation " .. generation ..
    " (the status is of generation " .. status.observedGeneration .. ")"
  return hs
end

local ready = find_condition(status, "Ready")
local stalled = find_condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Failed")
  return hs
end

local phase = status.phase
if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe(ready, "Failed")
elseif phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Succeeded")
elseif phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = describe(ready, "Suspended")
else
  hs.status = "Progressing"
  hs.message = describe(ready, "Running")
end
return hs
