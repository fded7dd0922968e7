//! What every operation of the API answers besides its own statuses (docs/api.md §3 Errors),
//! written into `/openapi.json` once rather than repeated on each handler: a client generated from
//! the document then knows that any credentialed call may answer 401, 429 or 503, and that every
//! error has the same JSON shape.
//!
//! Statuses a handler documents itself keep its wording; only missing descriptions are filled.
//!
//! The rules for fields that recur across request bodies (a name is 1–100 characters, a scope is
//! `resource:action`, a rate limit has a `limit` and a `window_seconds`, a PATCH changes
//! something) are written into their schemas here too, by field name, as the server applies
//! them by field name (`keygate_core::validate`, `Scope::parse`): a generated client then
//! refuses what the server would.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, Response};

/// A display name after `check_name`: no control characters, something besides white space.
const NAME_PATTERN: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$";
/// `Scope::parse`: `resource:action`, each `*` or of `[a-z0-9_.-]`.
const SCOPE_PATTERN: &str = "^([a-z0-9_.-]+|\\*):([a-z0-9_.-]+|\\*)$";

/// Operations under `/v1/` that take no credential.
const OPEN: [&str; 3] = ["/v1/register", "/v1/login", "/v1/keys/verify"];

/// Adds the shared statuses, security requirements and error bodies to every operation, and
/// the shared field rules to every request body.
pub(crate) fn complete(doc: &mut Document) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
        for op in ops.into_iter().flatten() {
            complete_operation(path, op);
        }
    }
    if let Some(components) = doc.components.as_mut() {
        for (name, schema) in components.schemas.iter_mut() {
            if let (true, RefOr::T(Schema::Object(body))) = (name.ends_with("Body"), schema) {
                if name.starts_with("Patch") {
                    body.min_properties = Some(1);
                }
                for (field, property) in body.properties.iter_mut() {
                    constrain_field(field, property);
                }
            }
        }
    }
}

fn constrain_field(field: &str, property: &mut RefOr<Schema>) {
    match (field, property) {
        ("name", RefOr::T(Schema::Object(s))) => {
            s.min_length = Some(1);
            s.max_length = Some(100);
            s.pattern = Some(NAME_PATTERN.to_owned());
        }
        ("scopes" | "permissions", RefOr::T(Schema::Array(list))) => {
            if let ArrayItems::RefOrSchema(item) = &mut list.items
                && let RefOr::T(Schema::Object(s)) = item.as_mut()
            {
                s.max_length = Some(100);
                s.pattern = Some(SCOPE_PATTERN.to_owned());
            }
        }
        ("authority", RefOr::T(Schema::Object(s))) => {
            let mut values = vec!["user".into(), "administrator".into(), "owner".into()];
            if matches!(&s.schema_type, SchemaType::Array(types) if types.contains(&Type::Null)) {
                values.push(serde_json::Value::Null);
            }
            s.enum_values = Some(values);
        }
        ("rate_limit", property) => {
            // `null` clears a key's own limit on PATCH; absent leaves it.
            let limit = OneOfBuilder::new()
                .item(Ref::from_schema_name("RateLimitView"))
                .item(ObjectBuilder::new().schema_type(Type::Null))
                .build();
            *property = RefOr::T(Schema::OneOf(limit));
        }
        _ => {}
    }
}

fn complete_operation(path: &str, op: &mut Operation) {
    let api = path.starts_with("/v1/");
    let credentialed = api && !OPEN.contains(&path);
    let has_input = op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if credentialed && op.security.as_ref().is_none_or(Vec::is_empty) {
        op.security = Some(security_for(path));
    }
    for parameter in op.parameters.iter_mut().flatten() {
        // Every list pages with `?limit=` 1–100 (`extract::page_request`).
        if parameter.name == "limit"
            && let Some(RefOr::T(Schema::Object(s))) = parameter.schema.as_mut()
        {
            s.minimum = Some(utoipa::Number::UInt(1));
            s.maximum = Some(utoipa::Number::UInt(100));
        }
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
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
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
        let limit = ParameterBuilder::new()
            .name("limit")
            .parameter_in(ParameterIn::Query)
            .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)));
        let op = OperationBuilder::new()
            .parameter(limit)
            .request_body(Some(RequestBody::new()))
            .response("201", Response::new("created"))
            .response("409", Response::new(""))
            .build();
        let mut doc = doc_with("/v1/keys", op);
        complete(&mut doc);
        assert_eq!(statuses(&doc, "/v1/keys"), ["201", "400", "401", "409", "413", "429", "503"]);
        let op = doc.paths.paths["/v1/keys"].post.as_ref().expect("post");
        assert_eq!(op.security.as_ref().map(Vec::len), Some(2), "a session token or an API key");
        let json = serde_json::to_value(op).expect("json");
        assert_eq!(
            (json["parameters"][0]["schema"]["minimum"].as_u64(), json["parameters"][0]["schema"]["maximum"].as_u64()),
            (Some(1), Some(100))
        );
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
    fn request_bodies_get_the_shared_field_rules() {
        use utoipa::openapi::ComponentsBuilder;
        use utoipa::openapi::schema::ArrayBuilder;
        let body = ObjectBuilder::new()
            .property("name", ObjectBuilder::new().schema_type(Type::String))
            .property("scopes", ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)))
            .property("rate_limit", ObjectBuilder::new().schema_type(Type::Object))
            .property("note", ObjectBuilder::new().schema_type(Type::String))
            .property("authority", ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null])))
            .build();
        let components =
            ComponentsBuilder::new().schema("PatchThingBody", body.clone()).schema("ThingView", body).build();
        let mut doc = OpenApiBuilder::new().components(Some(components)).build();
        complete(&mut doc);
        let json = serde_json::to_value(&doc).expect("json");
        let patch = &json["components"]["schemas"]["PatchThingBody"];
        assert_eq!(patch["minProperties"], 1, "a PATCH changes something");
        assert_eq!(
            (patch["properties"]["name"]["minLength"].as_u64(), patch["properties"]["name"]["maxLength"].as_u64()),
            (Some(1), Some(100))
        );
        assert_eq!(patch["properties"]["scopes"]["items"]["pattern"], SCOPE_PATTERN);
        assert_eq!(patch["properties"]["rate_limit"]["oneOf"][0]["$ref"], "#/components/schemas/RateLimitView");
        assert!(patch["properties"]["note"].get("pattern").is_none());
        assert_eq!(
            patch["properties"]["authority"]["enum"],
            serde_json::json!(["user", "administrator", "owner", null])
        );
        assert!(
            json["components"]["schemas"]["ThingView"]["properties"]["name"].get("minLength").is_none(),
            "answers are left alone"
        );

        let name = regex_lite_match(NAME_PATTERN);
        assert!(name("Acme Widgets") && name(" x ") && !name("   ") && !name("a\u{7}b") && !name(""));
        let scope = regex_lite_match(SCOPE_PATTERN);
        assert!(
            scope("leads:create")
                && scope("*:read")
                && scope("*:*")
                && !scope("Leads:x")
                && !scope(":read")
                && !scope("a:b:c")
        );
    }

    /// The patterns as a JSON Schema validator reads them (ECMA-262 syntax that the `regex`
    /// crate shares for these constructs).
    fn regex_lite_match(pattern: &str) -> impl Fn(&str) -> bool {
        let re = regex::Regex::new(pattern).expect("a valid pattern");
        move |s| re.is_match(s)
    }

    #[test]
    fn health_endpoints_stay_as_written() {
        let mut doc = doc_with("/healthz", OperationBuilder::new().response("200", Response::new("alive")).build());
        complete(&mut doc);
        assert_eq!(statuses(&doc, "/healthz"), ["200"]);
    }
}
