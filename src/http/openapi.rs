//! `/v2/openapi.json`, as clients are generated from it. utoipa describes each operation from
//! its handler (`#[utoipa::path]`, one per route through `utoipa_axum::routes!`); the rules
//! that hold for every operation are written here once, in `contract`: the `{code, data}`
//! envelope around every JSON answer, the error statuses and their `{code, message}` body,
//! `Retry-After` on 429, the `Idempotency-Key` header on POST, and the unauthenticated
//! operations endpoints.

use serde_json::{json, Map, Value};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Backstop",
        description = "Backup control plane for Milvus clusters (Zilliz Cloud v2 compatible where the operation exists)."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The error statuses an operation may answer, by method and path. Every authenticated
/// operation: a malformed path or query (400), no or an unknown key (401), a role without
/// the privilege (403), an unknown resource (404), the rate limit (429), the database
/// failing (500, 503). Writes add a conflict (409: state, names, idempotency keys), a body
/// over the limit (413, with a body), a refusal on the merits (422), and a cluster or
/// storage that did not answer (502). Reads of a cluster probe its Milvus (502).
fn error_statuses(method: &str, path: &str) -> Vec<u16> {
    let mut statuses = vec![400, 401, 403, 404, 429, 500, 503];
    match method {
        "post" => statuses.extend([409, 413, 422, 502]),
        "delete" => statuses.extend([409, 422, 502]),
        _ if path.starts_with("/v2/clusters") => statuses.push(502),
        _ => {}
    }
    statuses.sort_unstable();
    statuses
}

fn error_description(status: u16) -> &'static str {
    match status {
        400 => "Invalid input: the message names the field and the fix (code 90400).",
        401 => "No API key, or one that is not known (code 90401).",
        403 => "The key's role lacks the privilege (code 90403).",
        404 => "No such resource visible to this key (code 90404).",
        409 => {
            "Conflicts with the current state, a name in use, or an Idempotency-Key (code 90409)."
        }
        413 => "Body over the configured limit (code 90413).",
        422 => "Well-formed but refused on its merits; the message says why (code 90422).",
        429 => "Rate limited; retry after Retry-After seconds (code 90429).",
        500 => "Internal error; the message is generic, the log has the detail (code 90500).",
        502 => "The cluster's Milvus or storage did not answer (code 90502).",
        503 => "The database or a region's storage is not available (code 90503).",
        _ => "Error.",
    }
}

fn error_response(status: u16) -> Value {
    let mut response = json!({
        "description": error_description(status),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    });
    if status == 429 {
        response["headers"] = json!({
            "Retry-After": {
                "description": "Seconds until a request may succeed.",
                "schema": {"type": "integer", "minimum": 1}
            }
        });
    }
    response
}

/// `{"code": 0, "data": <schema>}`.
fn envelope(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["code", "data"],
        "properties": {"code": {"type": "integer", "enum": [0]}, "data": data}
    })
}

fn idempotency_header() -> Value {
    json!({
        "name": "Idempotency-Key",
        "in": "header",
        "required": false,
        "description": "Retry-safe writes: the same key and body from the same API key within 24 h get the first answer (header Idempotent-Replayed: true) and start nothing new.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255}
    })
}

/// An unauthenticated operations endpoint answering `{code: 0, data: {status}}`.
fn ops_operation(summary: &str, status: &str, errors: &[u16]) -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": "OK", "content": {"application/json": {"schema": envelope(json!({
            "type": "object", "required": ["status"],
            "properties": {"status": {"type": "string", "enum": [status]}}
        }))}}}),
    );
    for status in errors {
        responses.insert(status.to_string(), error_response(*status));
    }
    json!({"get": {"tags": ["operations"], "summary": summary, "security": [], "responses": responses}})
}

/// The document as served: utoipa's description of each operation with the rules above.
pub fn contract(openapi: utoipa::openapi::OpenApi, job_types: &[&str]) -> Value {
    let mut doc = serde_json::to_value(openapi).expect("the spec serializes");
    // The job types are the registry's: the filter of the job center takes exactly those.
    if let Some(params) = doc.pointer_mut("/paths/~1v2~1jobs/get/parameters") {
        for param in params.as_array_mut().into_iter().flatten() {
            if param["name"] == "type" {
                param["schema"] = json!({"type": "string", "enum": job_types});
            }
        }
    }
    doc["components"]["schemas"]["Error"] = json!({
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "integer", "description": "90000 + the HTTP status."},
            "message": {"type": "string", "description": "What went wrong, naming the field and the fix."}
        }
    });
    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        for (method, operation) in item.as_object_mut().expect("path item") {
            let responses = operation["responses"].as_object_mut().expect("responses");
            for (status, response) in responses.iter_mut() {
                let json_schema = response.pointer_mut("/content/application~1json/schema");
                if let (true, Some(schema)) = (status.starts_with('2'), json_schema) {
                    *schema = envelope(schema.take());
                }
            }
            for status in error_statuses(method, path) {
                responses.insert(status.to_string(), error_response(status));
            }
            if method == "post" && path != "/v2/apiKeys" {
                let parameters = operation
                    .as_object_mut()
                    .expect("operation")
                    .entry("parameters")
                    .or_insert_with(|| json!([]));
                parameters
                    .as_array_mut()
                    .expect("parameters")
                    .push(idempotency_header());
            }
        }
    }
    paths.insert(
        "/healthz".into(),
        ops_operation("Liveness: the process answers.", "ok", &[]),
    );
    paths.insert(
        "/readyz".into(),
        ops_operation(
            "Readiness: the database and every region's storage answer.",
            "ready",
            &[503],
        ),
    );
    paths.insert(
        "/metrics".into(),
        json!({"get": {"tags": ["operations"], "summary": "Prometheus metrics.", "security": [],
            "responses": {"200": {"description": "OpenMetrics text format",
                "content": {"application/openmetrics-text; version=1.0.0; charset=utf-8":
                    {"schema": {"type": "string"}}}}}}}),
    );
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_may_conflict_and_reads_of_clusters_may_find_milvus_silent() {
        assert!(error_statuses("post", "/v2/projects").contains(&409));
        assert!(!error_statuses("get", "/v2/projects").contains(&409));
        assert!(error_statuses("get", "/v2/clusters/{clusterId}").contains(&502));
        assert!(!error_statuses("get", "/v2/jobs").contains(&502));
        assert!(error_statuses("get", "/v2/jobs").contains(&429));
    }
}
