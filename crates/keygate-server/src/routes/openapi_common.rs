//! What every operation of the API answers besides its own statuses (SPEC §3), written into
//! `/openapi.json` once rather than repeated on each handler: a client generated from the
//! document then knows that any credentialed call may answer 401, 429 or 503, and that every
//! error has the same JSON shape.
//!
//! Statuses a handler documents itself keep its wording; only missing descriptions are filled.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, Response};

/// Operations under `/v1/` that take no credential.
const OPEN: [&str; 3] = ["/v1/register", "/v1/login", "/v1/keys/verify"];

/// Adds the shared statuses, security requirements and error bodies to every operation.
pub fn complete(doc: &mut Document) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
        for op in ops.into_iter().flatten() {
            complete_operation(path, op);
        }
    }
}

fn complete_operation(path: &str, op: &mut Operation) {
    let api = path.starts_with("/v1/");
    let credentialed = api && !OPEN.contains(&path);
    let has_input = op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if credentialed && op.security.as_ref().is_none_or(Vec::is_empty) {
        op.security = Some(security_for(path));
    }
    let responses = &mut op.responses.responses;
    let mut add = |status: &str, when: bool| {
        if when {
            responses.entry(status.to_owned()).or_insert_with(|| RefOr::T(Response::new("")));
        }
    };
    add("400", api && has_input);
    add("401", credentialed);
    add("413", api && op.request_body.is_some());
    add("429", credentialed);
    add("503", api || path == "/readyz");
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response {
            describe(status, response);
        }
    }
}

/// The operator API takes the operator token as a bearer; everything else a session token
/// (bearer) or an API key.
fn security_for(path: &str) -> Vec<SecurityRequirement> {
    let bearer = SecurityRequirement::new("bearer", Vec::<String>::new());
    if path.starts_with("/v1/admin/") {
        vec![bearer]
    } else {
        vec![bearer, SecurityRequirement::new("api_key", Vec::<String>::new())]
    }
}

/// Fills an empty description with the status's meaning in the contract, and gives every error
/// the shared `ErrorBody`.
fn describe(status: &str, response: &mut Response) {
    if response.description.is_empty() {
        response.description = meaning(status).to_owned();
    }
    if status.starts_with('4') || status.starts_with('5') {
        response
            .content
            .entry("application/json".to_owned())
            .or_insert_with(|| Content::new(Some(Ref::from_schema_name("ErrorBody"))));
    }
}

fn meaning(status: &str) -> &'static str {
    match status {
        "200" | "201" => "success",
        "204" => "done; no body",
        "400" => {
            "invalid_request: malformed JSON, wrong types or bad values (`details` lists the fields); \
             account_id_required: a session token called an account-scoped endpoint without `account_id`"
        }
        "401" => {
            "missing_credentials, invalid_credentials, session_expired, api_key_revoked, api_key_expired \
             or api_key_inactive"
        }
        "403" => {
            "insufficient_authority, insufficient_scope, user_credential_required, session_required, \
             plan_required or ip_not_allowed"
        }
        "404" => "not_found: no such resource, or one in an account the caller does not belong to",
        "409" => "conflict: the resource's state forbids the change (see `code`)",
        "413" => "payload_too_large: the body is over `max_body_bytes`",
        "429" => "rate_limited (`Retry-After` says when to retry) or usage_exceeded",
        "503" => "unavailable: storage cannot be reached, so nothing is decided (fails closed)",
        _ => "see docs/api.md",
    }
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder};
    use utoipa::openapi::request_body::RequestBody;
    use utoipa::openapi::{OpenApiBuilder, Paths};

    use super::*;

    fn doc_with(path: &str, op: Operation) -> Document {
        let mut paths = Paths::new();
        paths.add_path_operation(path, vec![HttpMethod::Post], op);
        OpenApiBuilder::new().paths(paths).build()
    }

    fn statuses(doc: &Document, path: &str) -> Vec<String> {
        let op = doc.paths.paths[path].post.as_ref().expect("post");
        op.responses.responses.keys().cloned().collect()
    }

    #[test]
    fn a_credentialed_call_with_a_body_gets_every_shared_status() {
        let op = OperationBuilder::new()
            .request_body(Some(RequestBody::new()))
            .response("201", Response::new("created"))
            .response("409", Response::new(""))
            .build();
        let mut doc = doc_with("/v1/keys", op);
        complete(&mut doc);
        assert_eq!(statuses(&doc, "/v1/keys"), ["201", "400", "401", "409", "413", "429", "503"]);
        let op = doc.paths.paths["/v1/keys"].post.as_ref().expect("post");
        assert_eq!(op.security.as_ref().map(Vec::len), Some(2), "a session token or an API key");
        let RefOr::T(created) = &op.responses.responses["201"] else { panic!("inline") };
        assert_eq!(created.description, "created", "a handler's own wording stays");
        assert!(created.content.is_empty(), "success bodies are the handler's");
        let RefOr::T(conflict) = &op.responses.responses["409"] else { panic!("inline") };
        assert!(conflict.description.starts_with("conflict"));
        assert!(conflict.content.contains_key("application/json"), "errors get the ErrorBody");
    }

    #[test]
    fn open_calls_get_no_401_and_the_operator_api_takes_a_bearer_only() {
        let op = OperationBuilder::new().request_body(Some(RequestBody::new())).build();
        let mut doc = doc_with("/v1/login", op.clone());
        complete(&mut doc);
        assert_eq!(statuses(&doc, "/v1/login"), ["400", "413", "503"]);

        let mut doc = doc_with("/v1/admin/accounts/{id}", op);
        complete(&mut doc);
        let op = doc.paths.paths["/v1/admin/accounts/{id}"].post.as_ref().expect("post");
        assert_eq!(op.security.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn health_endpoints_stay_as_written() {
        let mut doc = doc_with("/healthz", OperationBuilder::new().response("200", Response::new("alive")).build());
        complete(&mut doc);
        assert_eq!(statuses(&doc, "/healthz"), ["200"]);
    }
}
