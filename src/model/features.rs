//! Vision features shared across variants.
//!
//! Variants that reference the same frozen vision encoder (same graph sha256) compute identical
//! features for the same pixels, so a comparison of many variants should run each encoder once
//! per item (../shared/BRIEF.md). A [`FeatureCache`] maps (encoder sha256, hash of one sample's
//! pixels) to that sample's (F, patches, vision_dim) features; give the same cache to every model
//! with [`super::Model::with_feature_cache`]. It is cheap to clone (shared) and thread-safe.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ndarray::{Array3, ArrayView4};
use sha2::{Digest, Sha256};

/// Most bytes of features the cache keeps; past it, new features are computed but not stored.
pub const DEFAULT_CAPACITY_BYTES: usize = 2 << 30;

/// (encoder sha256, sha256 of the pixels' shape and bits).
type Key = (String, [u8; 32]);

#[derive(Debug, Default)]
struct Inner {
    map: Mutex<HashMap<Key, Arc<Array3<f32>>>>,
    bytes: AtomicUsize,
    hits: AtomicUsize,
    misses: AtomicUsize,
}

/// A shared cache of vision-encoder outputs; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct FeatureCache {
    inner: Arc<Inner>,
    capacity: usize,
}

impl FeatureCache {
    /// An empty cache holding at most [`DEFAULT_CAPACITY_BYTES`].
    pub fn new() -> FeatureCache {
        FeatureCache::with_capacity_bytes(DEFAULT_CAPACITY_BYTES)
    }

    /// An empty cache holding at most `bytes` of features.
    pub fn with_capacity_bytes(bytes: usize) -> FeatureCache {
        FeatureCache { inner: Arc::default(), capacity: bytes }
    }

    /// The key of one sample's (F, 3, S, S) pixels under encoder `sha256`: the SHA-256 of their
    /// shape and exact bit patterns, so equal keys mean equal inputs. The pixels' memory is hashed
    /// as it lies (native byte order: keys are compared within one process only); a pixel tensor
    /// in another layout is hashed value by value in the same logical order.
    pub fn key(sha256: &str, pixels: &ArrayView4<'_, f32>) -> Key {
        let mut hasher = Sha256::new();
        for &d in pixels.shape() {
            hasher.update((d as u64).to_le_bytes());
        }
        match pixels.as_slice() {
            Some(values) => hasher.update(bytemuck::cast_slice::<f32, u8>(values)),
            None => {
                for v in pixels.iter() {
                    hasher.update(v.to_ne_bytes());
                }
            }
        }
        (sha256.to_string(), hasher.finalize().into())
    }

    /// The cached features for `key`, counting a hit or a miss.
    pub fn get(&self, key: &Key) -> Option<Arc<Array3<f32>>> {
        let found = self.inner.map.lock().ok().and_then(|m| m.get(key).cloned());
        let counter = if found.is_some() { &self.inner.hits } else { &self.inner.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores features for `key` unless the cache is full.
    pub fn insert(&self, key: Key, features: Arc<Array3<f32>>) {
        let size = features.len() * std::mem::size_of::<f32>();
        if self.inner.bytes.load(Ordering::Relaxed) + size > self.capacity {
            return;
        }
        if let Ok(mut m) = self.inner.map.lock() {
            if m.insert(key, features).is_none() {
                self.inner.bytes.fetch_add(size, Ordering::Relaxed);
            }
        }
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (usize, usize) {
        (self.inner.hits.load(Ordering::Relaxed), self.inner.misses.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array4, ShapeBuilder};

    #[test]
    fn keys_tell_inputs_and_encoders_apart() {
        let a = Array4::<f32>::zeros((1, 3, 4, 4));
        let mut b = a.clone();
        b[[0, 1, 2, 3]] = 1e-7;
        assert_eq!(FeatureCache::key("x", &a.view()), FeatureCache::key("x", &a.clone().view()));
        assert_ne!(FeatureCache::key("x", &a.view()), FeatureCache::key("x", &b.view()));
        assert_ne!(FeatureCache::key("x", &a.view()), FeatureCache::key("y", &a.view()));
        // Same values, other shape.
        let c = Array4::<f32>::zeros((1, 3, 2, 8));
        assert_ne!(FeatureCache::key("x", &a.view()), FeatureCache::key("x", &c.view()));
        // The same values in another memory layout: the same key.
        let mut t = Array4::<f32>::zeros((1, 3, 4, 4).f());
        t.assign(&b);
        assert!(t.as_slice().is_none());
        assert_eq!(FeatureCache::key("x", &t.view()), FeatureCache::key("x", &b.view()));
    }

    #[test]
    fn stores_until_full_and_counts() {
        let cache = FeatureCache::with_capacity_bytes(64);
        let k1 = ("x".to_string(), [1; 32]);
        let k2 = ("x".to_string(), [2; 32]);
        assert!(cache.get(&k1).is_none());
        cache.insert(k1.clone(), Arc::new(Array3::zeros((1, 2, 8)))); // 64 bytes
        cache.insert(k2.clone(), Arc::new(Array3::zeros((1, 1, 1))));
        assert!(cache.get(&k1).is_some());
        assert!(cache.get(&k2).is_none(), "over capacity");
        assert_eq!(cache.stats(), (1, 2));
        let shared = cache.clone();
        assert_eq!(shared.stats(), (1, 2));
    }
}
