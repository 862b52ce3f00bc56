//! Default ids as PocketBase computes them, and random ids.

use rand::Rng;

/// `pbc_` + decimal crc32 of `type + name`, PocketBase's default collection id.
pub fn collection_id(kind: &str, name: &str) -> String {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(kind.as_bytes());
    hasher.update(name.as_bytes());
    format!("pbc_{}", hasher.finalize())
}

/// `type` + decimal crc32 of `name`, PocketBase's default field id.
pub fn field_id(kind: &str, name: &str) -> String {
    format!("{kind}{}", crc32fast::hash(name.as_bytes()))
}

const ALNUM_LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// A random record id: 15 chars of `[a-z0-9]`.
pub fn random_id() -> String {
    random_from(ALNUM_LOWER, 15)
}

/// A random string of `[A-Za-z0-9]` (secrets, token keys, client ids).
pub fn random_string(len: usize) -> String {
    random_from(ALNUM, len)
}

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superusers_collection_id_matches_the_sdk_constant() {
        assert_eq!(collection_id("auth", "_superusers"), "pbc_3142635823");
    }

    #[test]
    fn field_ids_match_pocketbase_defaults() {
        assert_eq!(field_id("text", "id"), "text3208210256");
        assert_eq!(field_id("text", "title"), "text724990059");
    }

    #[test]
    fn random_ids_have_the_default_shape() {
        let id = random_id();
        assert_eq!(id.len(), 15);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }
}
