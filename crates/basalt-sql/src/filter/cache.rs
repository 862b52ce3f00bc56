//! A bounded cache of compiled rules and filters.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use basalt_schema::{Collection, SchemaLookup};

use super::compile::{CompiledExpr, compile_filter, compile_rule};
use super::context::{CompileOptions, FilterMode};
use super::error::CompileError;

/// What a compiled expression depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    collection_id: String,
    text: String,
    schema_version: u64,
    options: CompileOptions,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, Arc<CompiledExpr>>,
    order: VecDeque<Key>,
    hits: u64,
    misses: u64,
}

/// Counters of a [`RuleCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that parsed and compiled.
    pub misses: u64,
    /// Entries held now.
    pub entries: usize,
}

/// Compiled expressions keyed by (collection id, text, schema version, dialect, mode,
/// caller's auth collection). Request values are never part of an entry: they are
/// bound when the entry is rendered. At most `capacity` entries; the oldest goes
/// first. Errors are not cached. Bump `schema_version` on every collection change.
#[derive(Debug)]
pub struct RuleCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl RuleCache {
    /// A cache of at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> RuleCache {
        RuleCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The compiled `text` (a rule, or a client filter when `opts.mode` says so).
    pub fn get(
        &self,
        schema: &dyn SchemaLookup,
        collection: &Collection,
        text: &str,
        opts: &CompileOptions,
        schema_version: u64,
    ) -> Result<Arc<CompiledExpr>, CompileError> {
        let key = Key {
            collection_id: collection.id.clone(),
            text: text.to_string(),
            schema_version,
            options: opts.clone(),
        };
        {
            let mut inner = self.lock();
            if let Some(found) = inner.map.get(&key).cloned() {
                inner.hits += 1;
                return Ok(found);
            }
            inner.misses += 1;
        }
        let compiled = Arc::new(match opts.mode {
            FilterMode::Rule => compile_rule(schema, collection, text, opts)?,
            FilterMode::ClientFilter { .. } => compile_filter(schema, collection, text, opts)?,
        });
        let mut inner = self.lock();
        if !inner.map.contains_key(&key) {
            while inner.map.len() >= self.capacity {
                let Some(oldest) = inner.order.pop_front() else {
                    break;
                };
                inner.map.remove(&oldest);
            }
            inner.order.push_back(key.clone());
            inner.map.insert(key, compiled.clone());
        }
        Ok(compiled)
    }

    /// Hit and miss counters.
    pub fn stats(&self) -> CacheStats {
        let inner = self.lock();
        CacheStats {
            hits: inner.hits,
            misses: inner.misses,
            entries: inner.map.len(),
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.map.clear();
        inner.order.clear();
    }
}
