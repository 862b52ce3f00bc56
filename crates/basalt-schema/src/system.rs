//! The collections every new database starts with.

use crate::collection::{Collection, CollectionType};
use crate::field::{Field, FieldKind};

/// The id of `_superusers` (the JS SDK hard-codes it).
pub const SUPERUSERS_ID: &str = "pbc_3142635823";
/// The id of the default `users` collection.
pub const USERS_ID: &str = "_pb_users_auth_";
/// The id of `_externalAuths`, the OAuth2 links (PocketBase's).
pub const EXTERNAL_AUTHS_ID: &str = "pbc_2281828961";

/// The rule of `_externalAuths` for list, view and delete: a signed-in auth record sees
/// and removes only its own links.
const OWN_LINKS_RULE: &str = "@request.auth.id != '' && recordRef = @request.auth.id && collectionRef = @request.auth.collectionId";

/// The unique indexes of `_externalAuths`: one link per record and provider, one record
/// per provider identity (OAuth2 sign-ins rely on both).
pub const EXTERNAL_AUTHS_INDEXES: [&str; 2] = [
    "CREATE UNIQUE INDEX `idx_externalAuths_record_provider` ON `_externalAuths` (collectionRef, recordRef, provider)",
    "CREATE UNIQUE INDEX `idx_externalAuths_collection_provider` ON `_externalAuths` (collectionRef, provider, providerId)",
];

fn autodate(name: &str, on_update: bool) -> Field {
    Field::new(
        name,
        FieldKind::Autodate {
            on_create: true,
            on_update,
        },
    )
}

fn created_updated(collection: &mut Collection) {
    collection.fields.push(autodate("created", false));
    collection.fields.push(autodate("updated", true));
}

/// The `_superusers` auth collection: system, every rule locked.
pub fn default_superusers() -> Collection {
    let mut collection = Collection::new(CollectionType::Auth, "_superusers");
    collection.system = true;
    created_updated(&mut collection);
    for field in &mut collection.fields {
        field.system = true;
    }
    if let Some(auth) = collection.auth.as_mut() {
        auth.auth_token.duration = 86_400;
    }
    collection
}

/// The `_externalAuths` base collection: system, the OAuth2 links of auth records
/// (`collectionRef`, `recordRef`, `provider`, `providerId`), readable and deletable by
/// their owner, written only by superusers and the OAuth2 sign-in.
pub fn default_external_auths() -> Collection {
    let mut collection = Collection::new(CollectionType::Base, "_externalAuths");
    collection.id = EXTERNAL_AUTHS_ID.to_string();
    collection.system = true;
    for name in ["collectionRef", "recordRef", "provider", "providerId"] {
        collection.fields.push(Field::new(
            name,
            FieldKind::Text {
                required: true,
                min: 0,
                max: 0,
                pattern: String::new(),
                autogenerate_pattern: String::new(),
                primary_key: false,
            },
        ));
    }
    created_updated(&mut collection);
    for field in &mut collection.fields {
        field.system = true;
    }
    let own = Some(OWN_LINKS_RULE.to_string());
    collection.list_rule = own.clone();
    collection.view_rule = own.clone();
    collection.delete_rule = own;
    collection.indexes = EXTERNAL_AUTHS_INDEXES.map(str::to_string).to_vec();
    collection
}

/// The default `users` auth collection, with owner-only rules.
pub fn default_users() -> Collection {
    let mut collection = Collection::new(CollectionType::Auth, "users");
    collection.id = USERS_ID.to_string();
    collection.indexes.clear();
    collection.ensure_system_fields();
    let owner = Some("id = @request.auth.id".to_string());
    collection.list_rule = owner.clone();
    collection.view_rule = owner.clone();
    collection.create_rule = Some(String::new());
    collection.update_rule = owner.clone();
    collection.delete_rule = owner;
    collection.fields.push(Field::new(
        "name",
        FieldKind::Text {
            required: false,
            min: 0,
            max: 255,
            pattern: String::new(),
            autogenerate_pattern: String::new(),
            primary_key: false,
        },
    ));
    collection.fields.push(Field::new(
        "avatar",
        FieldKind::File {
            required: false,
            max_select: 1,
            max_size: 0,
            mime_types: Some(vec![
                "image/jpeg".into(),
                "image/png".into(),
                "image/svg+xml".into(),
                "image/gif".into(),
                "image/webp".into(),
            ]),
            thumbs: None,
            protected: false,
        },
    ));
    created_updated(&mut collection);
    collection
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_collections_have_the_sdk_ids() {
        assert_eq!(default_superusers().id, SUPERUSERS_ID);
        assert_eq!(default_users().id, USERS_ID);
        assert_eq!(default_external_auths().id, EXTERNAL_AUTHS_ID);
        // PocketBase's id is its default one for the name.
        assert_eq!(
            crate::collection_id("base", "_externalAuths"),
            EXTERNAL_AUTHS_ID
        );
    }

    /// The collection as PocketBase 0.40.6 answers `GET /api/collections/_externalAuths`
    /// (apart from the dates).
    #[test]
    fn external_auths_has_pocketbases_shape() {
        let mut value = serde_json::to_value(default_external_auths()).expect("collection JSON");
        let object = value.as_object_mut().expect("an object");
        object.remove("created");
        object.remove("updated");
        // Basalt writes `help` on every field; PocketBase leaves it out on autodate fields
        // (of every collection, not only this one).
        for field in object["fields"].as_array_mut().expect("fields").iter_mut() {
            if field["type"] == "autodate"
                && let Some(field) = field.as_object_mut()
            {
                field.remove("help");
            }
        }
        let rule = "@request.auth.id != '' && recordRef = @request.auth.id && collectionRef = @request.auth.collectionId";
        let text = |id: &str, name: &str| {
            serde_json::json!({"autogeneratePattern": "", "help": "", "hidden": false, "id": id,
                "max": 0, "min": 0, "name": name, "pattern": "", "presentable": false,
                "primaryKey": false, "required": true, "system": true, "type": "text"})
        };
        let autodate = |id: &str, name: &str, on_update: bool| {
            serde_json::json!({"hidden": false, "id": id, "name": name, "onCreate": true,
                "onUpdate": on_update, "presentable": false, "system": true, "type": "autodate"})
        };
        assert_eq!(
            value,
            serde_json::json!({
                "id": "pbc_2281828961",
                "listRule": rule, "viewRule": rule, "createRule": null, "updateRule": null,
                "deleteRule": rule,
                "name": "_externalAuths", "type": "base", "system": true,
                "fields": [
                    {"autogeneratePattern": "[a-z0-9]{15}", "help": "", "hidden": false,
                     "id": "text3208210256", "max": 15, "min": 15, "name": "id",
                     "pattern": "^[a-z0-9]+$", "presentable": false, "primaryKey": true,
                     "required": true, "system": true, "type": "text"},
                    text("text455797646", "collectionRef"),
                    text("text127846527", "recordRef"),
                    text("text2462348188", "provider"),
                    text("text1044722854", "providerId"),
                    autodate("autodate2990389176", "created", false),
                    autodate("autodate3332085495", "updated", true),
                ],
                "indexes": [
                    "CREATE UNIQUE INDEX `idx_externalAuths_record_provider` ON `_externalAuths` (collectionRef, recordRef, provider)",
                    "CREATE UNIQUE INDEX `idx_externalAuths_collection_provider` ON `_externalAuths` (collectionRef, provider, providerId)"
                ],
            })
        );
    }

    #[test]
    fn auth_collections_get_their_system_fields_in_order() {
        let names: Vec<_> = default_users()
            .fields
            .iter()
            .map(|f| f.name.clone())
            .collect();
        assert_eq!(
            names,
            [
                "id",
                "password",
                "tokenKey",
                "email",
                "emailVisibility",
                "verified",
                "name",
                "avatar",
                "created",
                "updated"
            ]
        );
    }
}
