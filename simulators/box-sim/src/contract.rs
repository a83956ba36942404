//! Validation of JSON response bodies against Box's own OpenAPI file, so the simulator (and anything
//! else) can prove that what it sends is what Box documents. The file stays outside the repository.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value};

/// `SEATSYNC_BOX_OPENAPI`, else `<workspace root>/../shared/box-openapi/openapi.json`; `None` when the
/// file is absent (a fresh clone elsewhere).
pub fn default_spec_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SEATSYNC_BOX_OPENAPI") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = root.join("../shared/box-openapi/openapi.json");
    p.is_file().then(|| p.canonicalize().unwrap_or(p))
}

type Key = (String, String, u16);

pub struct SpecValidator {
    /// The OpenAPI document rewritten into draft-7 JSON Schema (see `preprocess`).
    doc: Value,
    cache: Mutex<HashMap<Key, Option<Arc<jsonschema::Validator>>>>,
}

impl std::fmt::Debug for SpecValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpecValidator").finish_non_exhaustive()
    }
}

impl SpecValidator {
    /// Loads and preprocesses the file once per process and path.
    pub fn load(path: &Path) -> anyhow::Result<Arc<SpecValidator>> {
        static LOADED: OnceLock<Mutex<HashMap<PathBuf, Arc<SpecValidator>>>> = OnceLock::new();
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let mut loaded = LOADED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(v) = loaded.get(&key) {
            return Ok(v.clone());
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading OpenAPI file {}: {e}", path.display()))?;
        let mut doc: Value =
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("parsing OpenAPI file {}: {e}", path.display()))?;
        anyhow::ensure!(doc.get("paths").is_some(), "{} has no `paths`", path.display());
        preprocess(&mut doc);
        let v = Arc::new(SpecValidator {
            doc,
            cache: Mutex::new(HashMap::new()),
        });
        loaded.insert(key, v.clone());
        Ok(v)
    }

    /// Validates `body` against the schema the spec gives for this operation and status (falling back
    /// to `default`). An operation or status the spec does not describe is itself a violation.
    pub fn validate(&self, method: &str, path_template: &str, status: u16, body: &Value) -> Result<(), Vec<String>> {
        let key = (method.to_ascii_lowercase(), path_template.to_string(), status);
        let validator = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            match cache.get(&key) {
                Some(v) => v.clone(),
                None => {
                    let v = self.compile(&key).map_err(|e| vec![e])?;
                    cache.insert(key.clone(), v.clone());
                    v
                }
            }
        };
        let Some(validator) = validator else {
            return Err(vec![format!(
                "{} {path_template} {status}: the spec gives no JSON schema for this response",
                key.0.to_uppercase()
            )]);
        };
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("at '{}': {e}", e.instance_path()))
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// Validates `value` against one schema of the spec's `components.schemas` (e.g. `EventSource`),
    /// for parts of a response that the response schema admits too loosely to prove anything.
    pub fn validate_schema(&self, name: &str, value: &Value) -> Result<(), Vec<String>> {
        // Cached beside the operations under a method no operation has.
        let key = ("#schema".to_string(), name.to_string(), 0);
        let validator = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            match cache.get(&key) {
                Some(Some(v)) => v.clone(),
                _ => {
                    let v = self.compile_schema(name).map_err(|e| vec![e])?;
                    cache.insert(key, Some(v.clone()));
                    v
                }
            }
        };
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("at '{}': {e}", e.instance_path()))
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    fn compile_schema(&self, name: &str) -> Result<Arc<jsonschema::Validator>, String> {
        if self.doc.pointer(&format!("/components/schemas/{name}")).is_none() {
            return Err(format!("no schema {name} in the spec"));
        }
        let mut root = Map::new();
        root.insert(
            "components".into(),
            self.doc.get("components").cloned().unwrap_or(Value::Null),
        );
        root.insert("$ref".into(), Value::String(format!("#/components/schemas/{name}")));
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .map(Arc::new)
            .map_err(|e| format!("schema {name} does not compile: {e}"))
    }

    fn compile(&self, (method, path, status): &Key) -> Result<Option<Arc<jsonschema::Validator>>, String> {
        let op = self
            .doc
            .get("paths")
            .and_then(|p| p.get(path))
            .and_then(|p| p.get(method))
            .ok_or_else(|| format!("{} {path}: no such operation in the spec", method.to_uppercase()))?;
        let responses = op
            .get("responses")
            .ok_or_else(|| format!("{method} {path}: no responses"))?;
        let Some(resp) = responses.get(status.to_string()).or_else(|| responses.get("default")) else {
            return Err(format!(
                "{} {path}: status {status} is not documented and there is no default",
                method.to_uppercase()
            ));
        };
        let Some(schema) = resp.pointer("/content/application~1json/schema") else {
            return Ok(None);
        };
        // Validate against a copy of the whole document whose root points at the response schema, so
        // `#/components/...` references resolve as they do in the spec.
        let mut root = Map::new();
        root.insert(
            "components".into(),
            self.doc.get("components").cloned().unwrap_or(Value::Null),
        );
        root.insert("x-response-schema".into(), schema.clone());
        root.insert("$ref".into(), Value::String("#/x-response-schema".into()));
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .map_err(|e| {
                format!(
                    "{} {path} {status}: schema does not compile: {e}",
                    method.to_uppercase()
                )
            })?;
        Ok(Some(Arc::new(validator)))
    }
}

/// Rewrites OpenAPI 3.0 schema dialect into draft-7 JSON Schema:
/// - `nullable: true` adds `null` to `type` (and to `enum`); where there is no `type` (a `$ref` or
///   `allOf`), the schema becomes `anyOf: [schema, {type: null}]`.
/// - `ClientError.code`: Box's enum lists only generic codes while the live API answers specific ones
///   (`invalid_parameter`, `rate_limit_exceeded`, `access_denied_insufficient_permissions`, ... per
///   box-api.md), so the enum is dropped and `code` is checked as an open string.
/// - A `oneOf` that includes `GenericSource` (`EventSourceResource`) can never pass: `GenericSource`
///   accepts every object, so any real source matches two branches. Such a `oneOf` becomes `anyOf`.
pub fn preprocess(doc: &mut Value) {
    if let Some(code) = doc.pointer_mut("/components/schemas/ClientError/properties/code")
        && let Some(obj) = code.as_object_mut()
    {
        obj.remove("enum");
    }
    walk(doc);
}

fn walk(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(walk),
        Value::Object(map) => {
            for (_, child) in map.iter_mut() {
                walk(child);
            }
            if let Some(one_of) = map.get("oneOf")
                && one_of.as_array().is_some_and(|a| {
                    a.iter()
                        .any(|s| s.get("$ref").and_then(Value::as_str) == Some("#/components/schemas/GenericSource"))
                })
            {
                let one_of = map.remove("oneOf").unwrap_or_default();
                map.insert("anyOf".into(), one_of);
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                map.remove("nullable");
                if let Some(Value::Array(e)) = map.get_mut("enum")
                    && !e.contains(&Value::Null)
                {
                    e.push(Value::Null);
                }
                match map.get_mut("type") {
                    Some(Value::String(t)) => {
                        let t = std::mem::take(t);
                        map.insert(
                            "type".into(),
                            Value::Array(vec![Value::String(t), Value::String("null".into())]),
                        );
                    }
                    Some(Value::Array(ts)) => {
                        if !ts.contains(&Value::String("null".into())) {
                            ts.push(Value::String("null".into()));
                        }
                    }
                    _ => {
                        let inner = std::mem::take(map);
                        map.insert(
                            "anyOf".into(),
                            Value::Array(vec![Value::Object(inner), serde_json::json!({"type": "null"})]),
                        );
                    }
                }
            }
        }
        _ => {}
    }
}

/// Environment variable naming a file where every simulator appends its contract report when it
/// stops, so a test run can state one total for the whole suite (`scripts/test` does).
pub const SUITE_LOG_ENV: &str = "SEATSYNC_CONTRACT_LOG";

/// Appends `checked violations` (and each violation on its own line) to the suite log, if any.
pub fn append_to_suite_log(report: &crate::ContractReport) {
    use std::io::Write;
    let Some(path) = std::env::var_os(SUITE_LOG_ENV) else {
        return;
    };
    let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) else {
        return;
    };
    let mut text = format!("{} {}\n", report.checked, report.violations.len());
    for v in &report.violations {
        text.push_str(&format!("violation: {}\n", v.replace('\n', " ")));
    }
    // One write call per report keeps lines from concurrent test processes whole.
    let _ = file.write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nullable_type_admits_null() {
        let mut v = json!({"type": "string", "nullable": true, "enum": ["a"]});
        preprocess(&mut v);
        assert_eq!(v, json!({"type": ["string", "null"], "enum": ["a", null]}));
    }

    #[test]
    fn nullable_ref_becomes_any_of_null() {
        let mut v = json!({"allOf": [{"$ref": "#/x"}], "nullable": true});
        preprocess(&mut v);
        assert_eq!(v, json!({"anyOf": [{"allOf": [{"$ref": "#/x"}]}, {"type": "null"}]}));
    }

    #[test]
    fn nullable_false_is_left_alone() {
        let mut v = json!({"type": "string", "nullable": false});
        preprocess(&mut v);
        assert_eq!(v, json!({"type": "string", "nullable": false}));
    }
}
