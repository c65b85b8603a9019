//! Patch algorithms: JSON patch (RFC 6902), JSON merge patch (RFC 7386), Kubernetes
//! strategic merge patch and server-side apply. All are pure functions over
//! `serde_json::Value`, guided by a [`PatchSchema`] that says how lists merge.

pub(crate) mod apply;
pub(crate) mod strategic;

/// How a list-typed field merges, from the kind's OpenAPI schema
/// (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`,
/// `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ListMerge {
    /// Replaced as a whole (the default for lists without a strategy).
    Atomic,
    /// A list of objects merged item by item, identified by these keys
    /// (strategic merge uses the first one, its patch merge key).
    Map { keys: Vec<String> },
    /// A list of scalars merged as a set.
    Set,
}

/// What the patch algorithms need to know about where a value sits in a kind's schema.
/// `None` where a schema is not known: objects then merge, lists are atomic.
pub(crate) trait PatchSchema: Sized {
    /// Schema of property `name` of an object.
    fn field(&self, name: &str) -> Option<Self>;
    /// Schema of an array's items, or of a map's values (`additionalProperties`).
    fn elements(&self) -> Option<Self>;
    /// How this (list-typed) field merges.
    fn list_merge(&self) -> ListMerge;
    /// Whether this field carries patch strategy `retainKeys`.
    #[allow(dead_code, reason = "the $retainKeys directive carries the keys itself")]
    fn retain_keys(&self) -> bool;
}
