//! Stored files: how uploads are named, what content type a file is served with, how
//! HTTP range and conditional requests are decided, thumbnails, and the storage backends
//! (a local folder or an S3-compatible bucket).
//!
//! Storage keys are `{collectionId}/{recordId}/{filename}`; thumbs live at
//! `{collectionId}/{recordId}/thumbs_{filename}/{size}_{filename}`. Every key is checked
//! segment by segment ([`check_key`]) before it touches a backend, so no user string can
//! reach outside the storage root.

mod conditional;
mod mime;
mod name;
mod s3;
mod storage;
mod thumb;

pub use conditional::{Conditions, Decision, Meta, decide};
pub use mime::{SNIFF_LEN, base_type, detect, extension_for, is_inline};
pub use name::{is_safe_name, stored_name};
pub use s3::S3Config;
pub use storage::{Entry, FileError, Opened, Payload, Storage, check_key};
pub use thumb::{MAX_PIXELS, ThumbError, ThumbMode, ThumbSize, render_thumb, thumb_source_ok};

/// The key of a record's file.
pub fn file_key(collection_id: &str, record_id: &str, filename: &str) -> String {
    format!("{collection_id}/{record_id}/{filename}")
}

/// The key of one thumb of a record's file.
pub fn thumb_key(collection_id: &str, record_id: &str, filename: &str, size: &str) -> String {
    format!("{collection_id}/{record_id}/thumbs_{filename}/{size}_{filename}")
}

/// The folder holding every thumb of a file.
pub fn thumbs_prefix(collection_id: &str, record_id: &str, filename: &str) -> String {
    format!("{collection_id}/{record_id}/thumbs_{filename}")
}
