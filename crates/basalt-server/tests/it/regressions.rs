//! Regression tests for server bugs the end-to-end suite found, each asserting
//! PocketBase's behaviour; each doc comment names the request, the expected answer and the
//! wrong answer Basalt gave before the fix.

use serde_json::json;

use crate::support::TestApp;
use crate::support::scenario::post;

/// A date field with `min` 2024-01-01 and `max` 2024-12-31,
/// `POST /api/collections/events/records {"when": "2023-06-01 00:00:00.000Z"}` (and 2025).
/// Expected (PocketBase core/field_date.go validates with ozzo's `validation.Min`/`Max`):
/// `data.when.code` = `validation_min_greater_equal_than_required` /
/// `validation_max_less_equal_than_required` (params `{threshold}`).
/// Actual: `validation_min_date_constraint` / `validation_max_date_constraint`
/// (params `{min}` / `{max}`).
#[tokio::test]
async fn date_range_errors_use_pocketbases_codes() {
    let app = TestApp::spawn().await;
    app.create_collection(json!({"name": "events", "createRule": "", "fields": [
        {"name": "when", "type": "date", "min": "2024-01-01 00:00:00.000Z",
         "max": "2024-12-31 23:59:59.000Z"}
    ]}))
    .await;
    let records = "/api/collections/events/records";
    app.check(vec![
        post("before min", records)
            .json(json!({"when": "2023-06-01 00:00:00.000Z"}))
            .status(400)
            .subset(json!({"data": {"when": {
                "code": "validation_min_greater_equal_than_required",
                "params": {"threshold": "[any]"}}}})),
        post("after max", records)
            .json(json!({"when": "2025-06-01 00:00:00.000Z"}))
            .status(400)
            .subset(json!({"data": {"when": {
                "code": "validation_max_less_equal_than_required",
                "params": {"threshold": "[any]"}}}})),
    ])
    .await;
}

/// A text field `ref` with `autogeneratePattern: "ref-[0-9]{4}"`:
/// `POST /api/collections/codes/records {}` and `{"ref:autogenerate": "x-"}`.
/// Expected (PocketBase core/field_text.go, reference sections 1.3 and 3.3): an empty value
/// is generated from the pattern on create (`"ref-1234"`), and the `:autogenerate` modifier
/// appends a generated value (`"x-ref-1234"`). Actual: `ref` stays `""` in both cases (the
/// option is stored but never applied to fields other than the system `id`).
#[tokio::test]
async fn text_autogenerate_pattern_applies_to_every_text_field() {
    let app = TestApp::spawn().await;
    app.create_collection(json!({"name": "codes", "createRule": "", "fields": [
        {"name": "ref", "type": "text", "autogeneratePattern": "ref-[0-9]{4}"}
    ]}))
    .await;
    let generated = app.create_record("codes", json!({})).await;
    let generated = generated["ref"].as_str().unwrap_or_default().to_string();
    let suffixed = app
        .create_record("codes", json!({"ref:autogenerate": "x-"}))
        .await;
    let suffixed = suffixed["ref"].as_str().unwrap_or_default().to_string();
    let is_ref = |text: &str| {
        text.len() == 8 && text.starts_with("ref-") && text[4..].bytes().all(|b| b.is_ascii_digit())
    };
    assert!(is_ref(&generated), "generated on create: {generated:?}");
    assert!(
        suffixed.starts_with("x-") && is_ref(&suffixed[2..]),
        ":autogenerate appends: {suffixed:?}"
    );
    let given = app.create_record("codes", json!({"ref": "mine"})).await;
    assert_eq!(given["ref"], "mine", "a given value is kept");
}

/// `POST /api/collections/things/records {"id": "abc/defghijklmn"}` (15 chars with a slash).
/// Expected (PocketBase core/field_text.go checks primary keys for `/` and `\` before any
/// other validator): 400 with `data.id = {code: "validation_pk_forbidden", params:
/// {forbidden: "/"}}`. Actual: `validation_invalid_format` from the id pattern.
#[tokio::test]
async fn a_slash_in_a_record_id_is_validation_pk_forbidden() {
    let app = TestApp::spawn().await;
    app.create_collection(json!({"name": "things", "createRule": "", "fields": []}))
        .await;
    app.check(vec![
        post("slash in an id", "/api/collections/things/records")
            .json(json!({"id": "abc/defghijklmn"}))
            .status(400)
            .subset(json!({"data": {"id": {"code": "validation_pk_forbidden",
                                           "params": {"forbidden": "/"}}}})),
    ])
    .await;
}

/// Alice logs in to `users`; the superuser then sends
/// `PATCH /api/collections/users {"authRule": "verified = true"}`; Alice's old token is used
/// for `GET /api/collections/users/records/{alice}`.
/// Expected (PocketBase core/collection_model.go, onCollectionSaveExecute: "invalidate
/// previously issued auth tokens on auth rule change" rotates `authToken.secret`): the old
/// token is a guest (404; auth-refresh 401). Actual: the old token keeps working (200), so a
/// tightened authRule does not log anyone out.
#[tokio::test]
async fn changing_the_auth_rule_revokes_issued_tokens() {
    use crate::support::Who;
    use crate::support::scenario::{get, patch};
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "alice-password").await;
    app.check(vec![
        patch("tighten the auth rule", "/api/collections/users")
            .who(Who::Superuser)
            .json(json!({"authRule": "verified = true"}))
            .subset(json!({"authRule": "verified = true"})),
        get(
            "the old token is a guest",
            format!("/api/collections/users/records/{alice}"),
        )
        .who(Who::User("alice"))
        .error(404, "The requested resource wasn't found."),
        post(
            "refresh with the old token",
            "/api/collections/users/auth-refresh",
        )
        .who(Who::User("alice"))
        .error(
            401,
            "The request requires valid record authorization token.",
        ),
    ])
    .await;
}

/// `PATCH /api/collections/_superusers {"listRule": ""}` as the superuser.
/// Expected (PocketBase core/collection_validate.go, ensureNoSystemRuleChange): 400
/// "Failed to update collection." with `data.listRule.code =
/// "validation_collection_system_rule_change"`. Actual: 200 and the change is silently
/// dropped (listRule stays null), so the client believes it succeeded.
#[tokio::test]
async fn changing_a_system_collections_rule_is_a_validation_error() {
    use crate::support::Who;
    use crate::support::scenario::patch;
    let app = TestApp::spawn().await;
    app.check(vec![
        patch("open the superusers list", "/api/collections/_superusers")
            .who(Who::Superuser)
            .json(json!({"listRule": ""}))
            .status(400)
            .subset(json!({"message": "Failed to update collection.", "data": {
                "listRule": {"code": "validation_collection_system_rule_change"}}})),
    ])
    .await;
}

/// `PATCH /api/collections/_superusers {"name": "admins"}` and, on a base collection,
/// `PATCH /api/collections/posts` changing field 1 (`title`) from text to number.
/// Expected (PocketBase core/collection_validate.go): `data.name.code =
/// "validation_collection_system_name_change"`, and the type change reported on the field
/// itself, `data.fields.1.code = "validation_field_type_change"`.
/// Actual: `validation_system_collection_name_change` (words swapped), and
/// `data.fields.1.type.code` (one level deeper).
#[tokio::test]
async fn collection_update_codes_match_pocketbase() {
    use crate::support::Who;
    use crate::support::scenario::patch;
    let app = TestApp::spawn().await;
    let posts = app
        .create_collection(json!({"name": "posts", "fields": [{"name": "title", "type": "text"}]}))
        .await;
    let id_field = posts["fields"][0].clone();
    let title_id = posts["fields"][1]["id"].clone();
    app.check(vec![
        patch("rename a system collection", "/api/collections/_superusers")
            .who(Who::Superuser)
            .json(json!({"name": "admins"}))
            .status(400)
            .subset(
                json!({"data": {"name": {"code": "validation_collection_system_name_change"}}}),
            ),
        patch("change a field type", "/api/collections/posts")
            .who(Who::Superuser)
            .json(
                json!({"fields": [id_field, {"id": title_id, "name": "title", "type": "number"}]}),
            )
            .status(400)
            .subset(json!({"data": {"fields": {"1": {"code": "validation_field_type_change"}}}})),
    ])
    .await;
}
