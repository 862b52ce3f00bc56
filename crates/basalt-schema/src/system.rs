//! The collections every new database starts with.

use crate::collection::{Collection, CollectionType};
use crate::field::{Field, FieldKind};

/// The id of `_superusers` (the JS SDK hard-codes it).
pub const SUPERUSERS_ID: &str = "pbc_3142635823";
/// The id of the default `users` collection.
pub const USERS_ID: &str = "_pb_users_auth_";

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
