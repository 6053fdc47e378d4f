//! Helpers shared by the api test binaries (`schema.rs`, `samples.rs`).

// Each test binary uses a subset of the helpers; tests may panic on broken fixtures.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// Deserializes `yaml` into `T`, serializes it back and returns every path of the input that
/// the type silently dropped (see [`dropped_in`]). Panics when the YAML does not deserialize.
pub fn dropped_paths<T: DeserializeOwned + Serialize + PartialEq>(yaml: &str) -> (T, Vec<String>) {
    let input: Value = serde_yaml::from_str(yaml).expect("valid YAML");
    dropped_in(&input).expect("deserializes into the type")
}

/// Deserializes `input` into `T`, serializes it back and returns every path of the input that is
/// missing from the output and that the type does not read (an unknown field, silently dropped).
///
/// Never reported: a known field written with a value the type omits when serializing, which is
/// equivalent to leaving it out (`labels:` with no value, `dependencies: []`, a dependency's
/// `status: succeeded`). A field counts as known when replacing its value by one of another JSON
/// type changes the deserialization (an error or a different value); an unknown field is
/// ignored whatever its value.
pub fn dropped_in<T: DeserializeOwned + Serialize + PartialEq>(
    input: &Value,
) -> Result<(T, Vec<String>), serde_json::Error> {
    let typed: T = serde_json::from_value(input.clone())?;
    let output = serde_json::to_value(&typed)?;
    let mut missing = Vec::new();
    collect_missing(&mut Vec::new(), input, &output, &mut missing);
    let dropped = missing
        .into_iter()
        .filter(|path| !is_known_field::<T>(input, &typed, path))
        .map(|path| render(&path))
        .collect();
    Ok((typed, dropped))
}

/// One step of a path into a JSON value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// An object key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// Renders a path as `.spec.groups[0].name`.
pub fn render(path: &[Step]) -> String {
    path.iter()
        .map(|step| match step {
            Step::Key(key) => format!(".{key}"),
            Step::Index(index) => format!("[{index}]"),
        })
        .collect()
}

fn collect_missing(
    path: &mut Vec<Step>,
    input: &Value,
    output: &Value,
    missing: &mut Vec<Vec<Step>>,
) {
    match (input, output) {
        (Value::Object(input), Value::Object(output)) => {
            for (key, value) in input {
                path.push(Step::Key(key.clone()));
                match output.get(key) {
                    Some(out) => collect_missing(path, value, out, missing),
                    None => missing.push(path.clone()),
                }
                path.pop();
            }
        }
        (Value::Array(input), Value::Array(output)) => {
            for (index, value) in input.iter().enumerate() {
                path.push(Step::Index(index));
                match output.get(index) {
                    Some(out) => collect_missing(path, value, out, missing),
                    None => missing.push(path.clone()),
                }
                path.pop();
            }
        }
        (Value::Object(_) | Value::Array(_), _) => missing.push(path.clone()),
        _ => {}
    }
}

/// Whether the object key at `path` is read by `T`: replacing its value by one of another JSON
/// type either fails to deserialize or changes the result.
fn is_known_field<T: DeserializeOwned + PartialEq>(
    input: &Value,
    typed: &T,
    path: &[Step],
) -> bool {
    let Some(Step::Key(_)) = path.last() else {
        return false;
    };
    let mut probed = input.clone();
    let Some(slot) = pointer_mut(&mut probed, path) else {
        return false;
    };
    *slot = match slot {
        Value::Object(_) | Value::Array(_) => Value::String("jobsmith-probe".into()),
        _ => serde_json::json!({ "jobsmith-probe": [1] }),
    };
    match serde_json::from_value::<T>(probed) {
        Err(_) => true,
        Ok(value) => value != *typed,
    }
}

fn pointer_mut<'a>(value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |node, step| match step {
        Step::Key(key) => node.get_mut(key.as_str()),
        Step::Index(index) => node.get_mut(*index),
    })
}
