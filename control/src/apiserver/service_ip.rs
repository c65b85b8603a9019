//! Service ClusterIPs, the pure part: the service CIDR's address math, the order dynamic
//! allocation tries addresses in, Kubernetes' allocation errors, and the rules kube-apiserver
//! 1.33 applies to `clusterIP`, `clusterIPs`, `ipFamilies` and `ipFamilyPolicy` when a Service
//! is created or updated (normalization, defaulting, validation). No I/O here: the writes
//! (an IPAddress object per allocated address) are in `service/cluster_ip.rs`, the repair of
//! leftovers in `controllers/ipaddress_repair.rs`.
//!
//! Invariants:
//! - The network and broadcast addresses are never handed out; a requested address outside
//!   the service CIDR, or one of those two, is refused with Kubernetes' error.
//! - Dynamic allocation tries the upper band first, from a random start and wrapping, and the
//!   low "static" band (min(max(16, size/16), 256) addresses, KEP-3070
//!   ServiceIPStaticSubrange) only once the upper band is full, so addresses users pick by
//!   hand from the low end rarely clash with dynamic ones.
//! - Deterministic: randomness comes in as a seed.
//! - The cluster is single-stack IPv4: `ipFamilies` is `["IPv4"]` except for headless
//!   Services without a selector, which Kubernetes makes RequireDualStack `["IPv4", "IPv6"]`
//!   (they allocate nothing, so any family is acceptable).

use std::net::{IpAddr, Ipv4Addr};

use flotilla_api::cidr::Ipv4Cidr;
use flotilla_api::selector::{go_quote, go_string_slice};
use flotilla_api::validation::Cause;
use serde_json::{Value, json};

/// Label naming who manages an IPAddress, and the allocator's value for it.
pub(crate) const MANAGED_BY_LABEL: &str = "ipaddress.kubernetes.io/managed-by";
pub(crate) const ALLOCATOR_NAME: &str = "ipallocator.k8s.io";
/// Label with an IPAddress's family.
pub(crate) const IP_FAMILY_LABEL: &str = "ipaddress.kubernetes.io/ip-family";
/// Name of the ServiceCIDR object that reflects `--service-cidr`.
pub(crate) const DEFAULT_SERVICE_CIDR_NAME: &str = "kubernetes";
/// `clusterIP` of a headless Service.
pub(crate) const NONE: &str = "None";
const IPV4: &str = "IPv4";
const IPV6: &str = "IPv6";
const SINGLE_STACK: &str = "SingleStack";
const PREFER_DUAL_STACK: &str = "PreferDualStack";
const REQUIRE_DUAL_STACK: &str = "RequireDualStack";

/// Kubernetes' `--service-cluster-ip-range` limit while the bitmap allocator is written too
/// (DisableAllocatorDualWrite is off in 1.33): at most 2^20 addresses.
const MIN_PREFIX: u8 = 12;
/// A smaller range has no address besides the network and broadcast ones.
const MAX_PREFIX: u8 = 30;

/// The range ClusterIPs come from (`--service-cidr`), with its static band.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceRange {
    cidr: Ipv4Cidr,
    /// Addresses `first .. first + static_band` form the low band that dynamic
    /// allocation leaves alone until the rest is full.
    static_band: u32,
}

/// Why a service CIDR is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceRangeError {
    #[error("specified --service-cidr {0} is too large; for 32-bit addresses, the mask must be >= {MIN_PREFIX}")]
    TooLarge(Ipv4Cidr),
    #[error("specified --service-cidr {0} is too small; the mask must be <= {MAX_PREFIX} to leave an address besides the network and broadcast ones")]
    TooSmall(Ipv4Cidr),
}

/// Kubernetes' ipallocator errors (pkg/registry/core/service/ipallocator/interfaces.go).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AllocError {
    #[error("range is full")]
    Full,
    #[error("provided IP is already allocated")]
    Allocated,
    /// Inside the CIDR but its network or broadcast address.
    #[error("the provided IP ({ip}) is not in the valid range. The range of valid IPs is {range}")]
    NotInRange { ip: Ipv4Addr, range: Ipv4Cidr },
    /// Outside every ServiceCIDR (1.33's MetaAllocator finds no allocator for it).
    #[error("the provided network does not match the current range")]
    MismatchedNetwork,
}

impl Default for ServiceRange {
    /// 10.43.0.0/16, the `--service-cidr` default.
    fn default() -> Self {
        ServiceRange::new(Ipv4Cidr::new(Ipv4Addr::new(10, 43, 0, 0), 16)).expect("the default service CIDR is valid")
    }
}

impl ServiceRange {
    pub fn new(cidr: Ipv4Cidr) -> Result<ServiceRange, ServiceRangeError> {
        if cidr.prefix() < MIN_PREFIX {
            return Err(ServiceRangeError::TooLarge(cidr));
        }
        if cidr.prefix() > MAX_PREFIX {
            return Err(ServiceRangeError::TooSmall(cidr));
        }
        // calculateRangeOffset: min(max(16, cidrSize/16), 256), none for ranges of 16 or less.
        let size = cidr.size();
        let static_band = if size <= 16 { 0 } else { (size / 16).clamp(16, 256) as u32 };
        Ok(ServiceRange { cidr, static_band })
    }

    pub fn cidr(&self) -> Ipv4Cidr {
        self.cidr
    }

    /// The first usable address: the `kubernetes` Service's ClusterIP.
    pub fn first_address(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first())
    }

    /// How many addresses can be allocated (network and broadcast excluded).
    pub fn hosts(&self) -> u64 {
        self.cidr.size() - 2
    }

    /// Size of the low band kept for requested addresses.
    pub fn static_band(&self) -> u32 {
        self.static_band
    }

    fn first(&self) -> u32 {
        u32::from(self.cidr.network()) + 1
    }

    fn last(&self) -> u32 {
        u32::from(self.cidr.broadcast()) - 1
    }

    /// Checks that a requested address may be allocated from this range.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<Ipv4Addr, AllocError> {
        let IpAddr::V4(v4) = ip else { return Err(AllocError::MismatchedNetwork) };
        if !self.cidr.contains(v4) {
            return Err(AllocError::MismatchedNetwork);
        }
        let n = u32::from(v4);
        if n < self.first() || n > self.last() {
            return Err(AllocError::NotInRange { ip: v4, range: self.cidr });
        }
        Ok(v4)
    }

    /// Every allocatable address once, in the order dynamic allocation tries them: the
    /// upper band from a seed-chosen start (wrapping), then the static band likewise.
    pub(crate) fn candidates(&self, seed: u64) -> impl Iterator<Item = Ipv4Addr> + use<> {
        let upper_len = (self.hosts() - u64::from(self.static_band)) as u32;
        let upper = band(self.first() + self.static_band, upper_len, (seed % u64::from(upper_len)) as u32);
        let lower_start = if self.static_band == 0 { 0 } else { (seed.rotate_right(32) % u64::from(self.static_band)) as u32 };
        let lower = band(self.first(), self.static_band, lower_start);
        upper.chain(lower)
    }

    /// The first address in [`candidates`](Self::candidates) order that `taken` rejects
    /// not, or `Full` (the in-memory model of what `service/cluster_ip.rs` does with
    /// IPAddress creates).
    #[cfg(test)]
    pub(crate) fn first_free(&self, seed: u64, taken: impl Fn(Ipv4Addr) -> bool) -> Result<Ipv4Addr, AllocError> {
        self.candidates(seed).find(|ip| !taken(*ip)).ok_or(AllocError::Full)
    }
}

/// `len` addresses from `base`, starting at `base + start` and wrapping around.
fn band(base: u32, len: u32, start: u32) -> impl Iterator<Item = Ipv4Addr> {
    (0..len).map(move |i| Ipv4Addr::from(base + (start + i) % len))
}

// ---------------------------------------------------------------------------
// Service spec rules
// ---------------------------------------------------------------------------

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: &Value, k: &str) -> Vec<String> {
    v.get(k).and_then(Value::as_array).map(|a| a.iter().map(|s| s.as_str().unwrap_or("").to_string()).collect()).unwrap_or_default()
}

fn set_or_remove(spec: &mut Value, k: &str, v: Option<Value>) {
    let Some(o) = spec.as_object_mut() else { return };
    match v {
        Some(v) => {
            o.insert(k.into(), v);
        }
        None => {
            o.remove(k);
        }
    }
}

/// `spec.type`, defaulted.
fn service_type(spec: &Value) -> &str {
    match text(spec, "type") {
        "" => "ClusterIP",
        t => t,
    }
}

/// ExternalName Services have no ClusterIP; every other type has one (or "None").
pub(crate) fn needs_cluster_ip(spec: &Value) -> bool {
    service_type(spec) != "ExternalName"
}

fn is_headless(spec: &Value) -> bool {
    strings(spec, "clusterIPs") == [NONE]
}

fn selectorless(spec: &Value) -> bool {
    spec.get("selector").and_then(Value::as_object).is_none_or(|m| m.is_empty())
}

/// The addresses a Service holds: its clusterIPs (or clusterIP), without "None" or "".
pub(crate) fn allocated_ips(spec: &Value) -> Vec<String> {
    let mut ips = strings(spec, "clusterIPs");
    if ips.is_empty() && !text(spec, "clusterIP").is_empty() {
        ips.push(text(spec, "clusterIP").to_string());
    }
    ips.retain(|ip| !ip.is_empty() && ip != NONE);
    ips
}

/// Create: a client that sets only `clusterIP` gets `clusterIPs` to match
/// (normalizeClusterIPs).
pub(crate) fn normalize_create(spec: &mut Value) {
    let ip = text(spec, "clusterIP").to_string();
    if !ip.is_empty() && strings(spec, "clusterIPs").is_empty() {
        set_or_remove(spec, "clusterIPs", Some(json!([ip])));
    }
}

/// Update, before validation: keeps the addresses the server allocated when the client
/// left them out (patchAllocatedValues), keeps `clusterIP` and `clusterIPs` in step
/// (normalizeClusterIPs), drops them with the family fields when the type changes to
/// ExternalName and the client did not touch them (dropTypeDependentFields), then fills the
/// family fields as [`init_ip_fields`] does (its errors are reported at commit).
pub(crate) fn prepare_update(old: &Value, new: &mut Value) {
    let Some(old) = old.get("spec").filter(|s| s.is_object()) else { return };
    let Some(spec) = new.get_mut("spec").filter(|s| s.is_object()) else { return };
    let (old_ip, old_ips) = (text(old, "clusterIP").to_string(), strings(old, "clusterIPs"));
    if needs_cluster_ip(old) && needs_cluster_ip(spec) {
        if text(spec, "clusterIP").is_empty() && !old_ip.is_empty() {
            set_or_remove(spec, "clusterIP", Some(json!(old_ip)));
        }
        if strings(spec, "clusterIPs").is_empty() && !old_ips.is_empty() {
            set_or_remove(spec, "clusterIPs", Some(json!(old_ips)));
        }
    }
    let same_ips = |spec: &Value| strings(spec, "clusterIPs") == old_ips;
    if !old_ips.is_empty() && strings(spec, "clusterIPs").is_empty() && text(spec, "clusterIP") == old_ip {
        set_or_remove(spec, "clusterIPs", Some(json!(old_ips)));
    }
    let new_ip = text(spec, "clusterIP").to_string();
    if new_ip != old_ip && same_ips(spec) {
        // Cleared: clear the list too; changed: follow it (validation refuses the change).
        let ips = (!new_ip.is_empty()).then(|| json!([new_ip]));
        set_or_remove(spec, "clusterIPs", ips);
    }
    if needs_cluster_ip(old) && !needs_cluster_ip(spec) {
        if same_ips(spec) && text(spec, "clusterIP") == old_ip {
            set_or_remove(spec, "clusterIP", None);
            set_or_remove(spec, "clusterIPs", None);
        }
        if spec.get("ipFamilies") == old.get("ipFamilies") {
            set_or_remove(spec, "ipFamilies", None);
        }
        if spec.get("ipFamilyPolicy") == old.get("ipFamilyPolicy") {
            set_or_remove(spec, "ipFamilyPolicy", None);
        }
    }
    let _ = init_ip_fields(spec, Some(old));
}

fn cause(field: &str, reason: &'static str, message: String) -> Cause {
    Cause { field: field.to_string(), reason, message }
}

fn invalid(field: &str, rendered: String, detail: &str) -> Cause {
    cause(field, "FieldValueInvalid", format!("Invalid value: {rendered}: {detail}"))
}

fn forbidden(field: &str, detail: &str) -> Cause {
    cause(field, "FieldValueForbidden", format!("Forbidden: {detail}"))
}

fn not_supported(field: &str, value: &str, supported: &[&str]) -> Cause {
    let list: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
    cause(field, "FieldValueNotSupported", format!("Unsupported value: {}: supported values: {}", go_quote(value), list.join(", ")))
}

fn family_of(ip: &str) -> &'static str {
    if ip.contains(':') { IPV6 } else { IPV4 }
}

/// ValidateServiceClusterIPsRelatedFields (pkg/apis/core/validation) for a Service that
/// needs a ClusterIP.
fn related_fields(spec: &Value) -> Vec<Cause> {
    let mut c = Vec::new();
    let ip = text(spec, "clusterIP");
    let ips = strings(spec, "clusterIPs");
    let slice = go_string_slice(&ips);
    if !ip.is_empty() {
        if ips.is_empty() {
            c.push(cause("spec.clusterIPs", "FieldValueRequired", "Required value".into()));
        } else if ips[0] != ip {
            c.push(invalid("spec.clusterIPs", slice.clone(), "first value must match `clusterIP`"));
        }
    } else if !ips.is_empty() {
        c.push(invalid("spec.clusterIPs", slice.clone(), "must be empty when `clusterIP` is not specified"));
    }
    let families = strings(spec, "ipFamilies");
    for (i, f) in families.iter().enumerate() {
        let field = format!("spec.ipFamilies[{i}]");
        if f != IPV4 && f != IPV6 {
            c.push(not_supported(&field, f, &[IPV4, IPV6]));
        }
        if families[..i].contains(f) {
            c.push(cause(&field, "FieldValueDuplicate", format!("Duplicate value: {}", go_quote(f))));
        }
    }
    if let Some(p) = spec.get("ipFamilyPolicy").and_then(Value::as_str)
        && ![PREFER_DUAL_STACK, REQUIRE_DUAL_STACK, SINGLE_STACK].contains(&p)
    {
        c.push(not_supported("spec.ipFamilyPolicy", p, &[PREFER_DUAL_STACK, REQUIRE_DUAL_STACK, SINGLE_STACK]));
    }
    let mut bad_ips = false;
    for (i, x) in ips.iter().enumerate() {
        if i == 0 && x == NONE {
            if ips.len() > 1 {
                bad_ips = true;
                c.push(invalid("spec.clusterIPs", slice.clone(), "'None' must be the first and only value"));
            }
            continue;
        }
        if x.parse::<IpAddr>().is_err() {
            bad_ips = true;
            c.push(invalid(&format!("spec.clusterIPs[{i}]"), go_quote(x), "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"));
        }
    }
    if ips.len() > 2 {
        c.push(invalid("spec.clusterIPs", slice.clone(), "may only hold up to 2 values"));
    }
    if bad_ips {
        return c;
    }
    if ips.len() > 1 && (ips.len() != 2 || family_of(&ips[0]) == family_of(&ips[1])) {
        c.push(invalid("spec.clusterIPs", slice, "may specify no more than one IP for each IP family"));
    }
    if !is_headless(spec) {
        for (i, (ip, f)) in ips.iter().zip(&families).enumerate() {
            if (f == IPV4 && family_of(ip) == IPV6) || (f == IPV6 && family_of(ip) != IPV6) {
                c.push(invalid(&format!("spec.clusterIPs[{i}]"), go_quote(ip), &format!("expected an {f} value as indicated by `ipFamilies[{i}]`")));
            }
        }
    }
    c
}

/// Create and update: the IP rules kube-apiserver checks before allocating, and the family
/// fields it fills in (initIPFamilyFields for a single-stack IPv4 cluster). `old` is the
/// stored spec on update. Returns the causes of a 422; the fields are filled as far as
/// they can be either way.
pub(crate) fn init_ip_fields(spec: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    if !spec.is_object() {
        return vec![];
    }
    if !needs_cluster_ip(spec) {
        let mut c = Vec::new();
        for (field, set) in [
            ("clusterIPs", !strings(spec, "clusterIPs").is_empty()),
            ("ipFamilies", !strings(spec, "ipFamilies").is_empty()),
            ("ipFamilyPolicy", spec.get("ipFamilyPolicy").is_some_and(|p| !p.is_null())),
        ] {
            if set {
                c.push(forbidden(&format!("spec.{field}"), "may not be set for ExternalName services"));
            }
        }
        return c;
    }
    let mut c = Vec::new();
    let ty = service_type(spec).to_string();
    if is_headless(spec) && (ty == "LoadBalancer" || ty == "NodePort") {
        c.push(invalid("spec.clusterIPs[0]", go_quote(NONE), &format!("may not be set to 'None' for {ty} services")));
    }
    let headless_selectorless = text(spec, "clusterIP") == NONE && selectorless(spec);
    if spec.get("ipFamilyPolicy").is_none_or(Value::is_null) {
        let policy = match old.and_then(|o| o.get("ipFamilyPolicy")).and_then(Value::as_str) {
            Some(p) => p,
            None if headless_selectorless => REQUIRE_DUAL_STACK,
            None => SINGLE_STACK,
        };
        set_or_remove(spec, "ipFamilyPolicy", Some(json!(policy)));
    }
    c.extend(related_fields(spec));
    if !c.is_empty() {
        return c;
    }
    let policy = text(spec, "ipFamilyPolicy").to_string();
    let ips = strings(spec, "clusterIPs");
    let mut families = strings(spec, "ipFamilies");
    if policy == SINGLE_STACK {
        for (n, what) in [(ips.len(), "cluster IPs"), (families.len(), "IP families")] {
            if n == 2 {
                c.push(invalid("spec.ipFamilyPolicy", go_quote(&policy), &format!("must be 'RequireDualStack' or 'PreferDualStack' when multiple {what} are specified")));
            }
        }
    }
    for (i, ip) in ips.iter().enumerate() {
        if ip == NONE {
            break;
        }
        if i >= families.len() {
            match family_of(ip) {
                IPV4 => families.push(IPV4.into()),
                fam => c.push(invalid(&format!("spec.clusterIPs[{i}]"), go_string_slice(&ips), &format!("{fam} is not configured on this cluster"))),
            }
        }
    }
    if !c.is_empty() {
        return c;
    }
    if headless_selectorless {
        if families.is_empty() {
            families.push(IPV4.into());
        }
        if families.len() < 2 && policy != SINGLE_STACK {
            let other = if families[0] == IPV4 { IPV6 } else { IPV4 };
            families.push(other.into());
        }
        set_or_remove(spec, "ipFamilies", Some(json!(families)));
        return c;
    }
    if policy == REQUIRE_DUAL_STACK {
        c.push(invalid("spec.ipFamilyPolicy", go_quote(&policy), "this cluster is not configured for dual-stack services"));
    }
    for (i, f) in families.iter().enumerate() {
        if f != IPV4 {
            c.push(invalid(&format!("spec.ipFamilies[{i}]"), go_quote(f), "not configured on this cluster"));
        }
    }
    if !c.is_empty() {
        return c;
    }
    if families.is_empty() {
        families.push(IPV4.into());
    }
    set_or_remove(spec, "ipFamilies", Some(json!(families)));
    c
}

/// Appends `extra` to `causes`, skipping causes already there (both checks report a
/// malformed `clusterIP`).
pub(crate) fn merge_causes(causes: &mut Vec<Cause>, extra: Vec<Cause>) {
    for c in extra {
        if !causes.contains(&c) {
            causes.push(c);
        }
    }
}

/// What a Service (its spec normalized and valid) asks to allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// ExternalName or headless: nothing.
    Nothing,
    /// No address given: the allocator picks one.
    Dynamic,
    /// This address.
    Static(IpAddr),
}

pub(crate) fn request(spec: &Value) -> Request {
    if !needs_cluster_ip(spec) || is_headless(spec) {
        return Request::Nothing;
    }
    match strings(spec, "clusterIPs").first().map(String::as_str) {
        None | Some("") => Request::Dynamic,
        Some(ip) => ip.parse().map_or(Request::Dynamic, Request::Static),
    }
}

/// Records a dynamically allocated address in the spec.
pub(crate) fn set_allocated(spec: &mut Value, ip: Ipv4Addr) {
    set_or_remove(spec, "clusterIP", Some(json!(ip.to_string())));
    set_or_remove(spec, "clusterIPs", Some(json!([ip.to_string()])));
}

/// The 422 cause of a requested address that cannot be had (alloc.go `allocIPs`).
pub(crate) fn static_failure(spec: &Value, ip: &IpAddr, e: &AllocError) -> Cause {
    invalid("spec.clusterIPs", go_string_slice(&strings(spec, "clusterIPs")), &format!("failed to allocate IP {ip}: {e}"))
}

/// The message of a dynamic allocation failure (a 500 InternalError in Kubernetes).
pub(crate) fn dynamic_failure(e: &AllocError) -> String {
    format!("failed to allocate a serviceIP: {e}")
}

/// The IPAddress object that allocates `ip` to the Service `namespace/name`.
pub(crate) fn ip_address(ip: Ipv4Addr, namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IPAddress",
        "metadata": {"name": ip.to_string(), "labels": {IP_FAMILY_LABEL: IPV4, MANAGED_BY_LABEL: ALLOCATOR_NAME}},
        "spec": {"parentRef": {"resource": "services", "namespace": namespace, "name": name}},
    })
}

/// The Service an IPAddress the allocator manages was allocated to, as (namespace, name).
pub(crate) fn parent_service(ip_address: &Value) -> Option<(&str, &str)> {
    if ip_address.pointer(&format!("/metadata/labels/{}", MANAGED_BY_LABEL.replace('/', "~1"))).and_then(Value::as_str) != Some(ALLOCATOR_NAME) {
        return None;
    }
    let r = ip_address.pointer("/spec/parentRef")?;
    (text(r, "group").is_empty() && text(r, "resource") == "services").then(|| (text(r, "namespace"), text(r, "name")))
}

/// The ServiceCIDR object that reflects `--service-cidr`.
pub(crate) fn service_cidr(range: &ServiceRange) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "ServiceCIDR",
        "metadata": {"name": DEFAULT_SERVICE_CIDR_NAME},
        "spec": {"cidrs": [range.cidr().to_string()]},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> ServiceRange {
        ServiceRange::new(s.parse().expect("cidr")).expect("range")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("ip")
    }

    #[test]
    fn static_band_follows_kubernetes_formula() {
        // min(max(16, size/16), 256); none at 16 addresses or fewer (KEP-3070 examples).
        for (cidr, band) in [("10.96.0.0/24", 16), ("10.96.0.0/20", 256), ("10.96.0.0/16", 256), ("10.96.0.0/12", 256), ("10.96.0.0/22", 64), ("10.96.0.0/27", 16), ("10.96.0.0/28", 0), ("10.96.0.0/30", 0)] {
            assert_eq!(range(cidr).static_band(), band, "{cidr}");
        }
        let r = range("10.43.0.0/16");
        assert_eq!(r.hosts(), 65534);
        assert_eq!(r.first_address(), ip("10.43.0.1"));
        assert_eq!(ServiceRange::default(), r);
    }

    #[test]
    fn sizes_outside_the_allocators_limits_are_refused() {
        let err = ServiceRange::new("10.0.0.0/8".parse().expect("cidr")).expect_err("too large");
        assert_eq!(err.to_string(), "specified --service-cidr 10.0.0.0/8 is too large; for 32-bit addresses, the mask must be >= 12");
        assert!(matches!(ServiceRange::new("10.0.0.0/31".parse().expect("cidr")), Err(ServiceRangeError::TooSmall(_))));
        assert!(ServiceRange::new("10.0.0.0/12".parse().expect("cidr")).is_ok());
    }

    #[test]
    fn requested_addresses_are_checked_against_the_range() {
        let r = range("10.43.0.0/16");
        assert_eq!(r.check("10.43.0.1".parse().expect("ip")), Ok(ip("10.43.0.1")));
        assert_eq!(r.check("10.43.255.254".parse().expect("ip")), Ok(ip("10.43.255.254")));
        for edge in ["10.43.0.0", "10.43.255.255"] {
            let e = r.check(edge.parse().expect("ip")).expect_err("network and broadcast");
            assert_eq!(e.to_string(), format!("the provided IP ({edge}) is not in the valid range. The range of valid IPs is 10.43.0.0/16"));
        }
        assert_eq!(r.check("10.44.0.1".parse().expect("ip")), Err(AllocError::MismatchedNetwork));
        assert_eq!(r.check("fd00::1".parse().expect("ip")), Err(AllocError::MismatchedNetwork));
        assert_eq!(AllocError::MismatchedNetwork.to_string(), "the provided network does not match the current range");
        assert_eq!(AllocError::Allocated.to_string(), "provided IP is already allocated");
    }

    #[test]
    fn dynamic_allocation_prefers_the_upper_band_and_wraps() {
        let r = range("10.96.0.0/24");
        // Upper band .17-.254 (238 addresses), then the static band .1-.16.
        let all: Vec<Ipv4Addr> = r.candidates(0).collect();
        assert_eq!(all.len(), 254);
        assert_eq!(all[0], ip("10.96.0.17"));
        assert_eq!(all[237], ip("10.96.0.254"));
        assert_eq!(all[238], ip("10.96.0.1"));
        assert_eq!(all[253], ip("10.96.0.16"));
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 254, "every address exactly once");
        // A seed moves the start within each band; the order still wraps.
        let seeded: Vec<Ipv4Addr> = r.candidates((3 << 32) + 186).collect();
        assert_eq!(seeded[0], ip("10.96.0.19"), "the seed is 2 mod 238: 2 past .17");
        assert_eq!(seeded[236], ip("10.96.0.17"));
        assert_eq!(seeded[238], ip("10.96.0.4"), "the static band starts 3 in");
        let mut s2 = seeded.clone();
        s2.sort();
        assert_eq!(s2, sorted);
    }

    #[test]
    fn the_static_band_is_used_only_when_the_upper_band_is_full() {
        let r = range("10.96.0.0/24");
        let in_upper = |a: Ipv4Addr| u32::from(a) >= u32::from(ip("10.96.0.17"));
        for seed in [0, 7, 12345678901] {
            let got = r.first_free(seed, |a| in_upper(a) && a != ip("10.96.0.200")).expect("free");
            assert_eq!(got, ip("10.96.0.200"), "the one free upper address wins over the whole static band");
            let got = r.first_free(seed, in_upper).expect("free");
            assert!(u32::from(got) <= u32::from(ip("10.96.0.16")), "{got}");
        }
    }

    #[test]
    fn exhaustion_is_kubernetes_range_is_full() {
        let r = range("10.96.0.0/28");
        assert_eq!(r.static_band(), 0);
        assert_eq!(r.candidates(5).count(), 14);
        let e = r.first_free(5, |_| true).expect_err("full");
        assert_eq!(e, AllocError::Full);
        assert_eq!(dynamic_failure(&e), "failed to allocate a serviceIP: range is full");
    }

    fn spec_after_create(spec: Value) -> (Value, Vec<String>) {
        let mut spec = spec;
        normalize_create(&mut spec);
        let c = init_ip_fields(&mut spec, None);
        (spec, c.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn families_and_policy_are_filled_as_kubernetes_fills_them() {
        let (s, c) = spec_after_create(json!({"type": "ClusterIP", "selector": {"app": "a"}, "ports": [{"port": 80}]}));
        assert!(c.is_empty(), "{c:?}");
        assert_eq!((s["ipFamilies"].clone(), s["ipFamilyPolicy"].clone()), (json!(["IPv4"]), json!("SingleStack")));
        assert_eq!(request(&s), Request::Dynamic);
        // A requested address: clusterIPs follows clusterIP.
        let (s, c) = spec_after_create(json!({"clusterIP": "10.43.0.10", "ports": [{"port": 80}]}));
        assert!(c.is_empty(), "{c:?}");
        assert_eq!(s["clusterIPs"], json!(["10.43.0.10"]));
        assert_eq!(request(&s), Request::Static("10.43.0.10".parse().expect("ip")));
        // Headless with a selector: single stack.
        let (s, c) = spec_after_create(json!({"clusterIP": "None", "selector": {"app": "a"}}));
        assert!(c.is_empty(), "{c:?}");
        assert_eq!((s["clusterIPs"].clone(), s["ipFamilies"].clone(), s["ipFamilyPolicy"].clone()), (json!(["None"]), json!(["IPv4"]), json!("SingleStack")));
        assert_eq!(request(&s), Request::Nothing);
        // Headless without a selector: RequireDualStack with both families, even single-stack.
        let (s, c) = spec_after_create(json!({"clusterIP": "None"}));
        assert!(c.is_empty(), "{c:?}");
        assert_eq!((s["ipFamilies"].clone(), s["ipFamilyPolicy"].clone()), (json!(["IPv4", "IPv6"]), json!("RequireDualStack")));
        // ExternalName: nothing is filled.
        let (s, c) = spec_after_create(json!({"type": "ExternalName", "externalName": "example.com"}));
        assert!(c.is_empty(), "{c:?}");
        assert!(s.get("ipFamilies").is_none() && s.get("ipFamilyPolicy").is_none() && s.get("clusterIPs").is_none());
        assert_eq!(request(&s), Request::Nothing);
        // Defaulting twice changes nothing.
        let (mut again, _) = spec_after_create(json!({"ports": [{"port": 80}]}));
        let before = again.clone();
        assert!(init_ip_fields(&mut again, None).is_empty());
        assert_eq!(again, before);
    }

    #[test]
    fn ip_field_errors_carry_kubernetes_messages() {
        let cases: &[(Value, &str)] = &[
            (json!({"type": "ExternalName", "externalName": "x.example", "clusterIP": "10.43.0.9"}), "spec.clusterIPs: Forbidden: may not be set for ExternalName services"),
            (json!({"type": "ExternalName", "externalName": "x.example", "ipFamilyPolicy": "SingleStack"}), "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services"),
            (json!({"ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 1}]}), "spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"),
            (json!({"ipFamilies": ["IPv6"], "ports": [{"port": 1}]}), "spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"),
            (json!({"ipFamilies": ["IPv5"], "ports": [{"port": 1}]}), "spec.ipFamilies[0]: Unsupported value: \"IPv5\": supported values: \"IPv4\", \"IPv6\""),
            (json!({"ipFamilyPolicy": "Both", "ports": [{"port": 1}]}), "spec.ipFamilyPolicy: Unsupported value: \"Both\": supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\""),
            (json!({"clusterIP": "fd00::1", "ports": [{"port": 1}]}), "spec.clusterIPs[0]: Invalid value: []string{\"fd00::1\"}: IPv6 is not configured on this cluster"),
            (json!({"clusterIP": "10.43.0.1", "clusterIPs": ["10.43.0.2"], "ports": [{"port": 1}]}), "spec.clusterIPs: Invalid value: []string{\"10.43.0.2\"}: first value must match `clusterIP`"),
            (json!({"clusterIPs": ["10.43.0.2"], "ports": [{"port": 1}]}), "spec.clusterIPs: Invalid value: []string{\"10.43.0.2\"}: must be empty when `clusterIP` is not specified"),
            (json!({"clusterIP": "10.43.0.1", "clusterIPs": ["10.43.0.1", "10.43.0.2"], "ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 1}]}), "spec.clusterIPs: Invalid value: []string{\"10.43.0.1\", \"10.43.0.2\"}: may specify no more than one IP for each IP family"),
            (json!({"clusterIP": "nope", "ports": [{"port": 1}]}), "spec.clusterIPs[0]: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"),
            (json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 1}]}), "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"),
        ];
        for (spec, want) in cases {
            let (_, got) = spec_after_create(spec.clone());
            assert_eq!(got, vec![want.to_string()], "{spec}");
        }
        let spec = json!({"clusterIPs": ["10.43.0.7"]});
        let e = static_failure(&spec, &"10.43.0.7".parse().expect("ip"), &AllocError::Allocated);
        assert_eq!(e.to_string(), "spec.clusterIPs: Invalid value: []string{\"10.43.0.7\"}: failed to allocate IP 10.43.0.7: provided IP is already allocated");
    }

    #[test]
    fn updates_keep_allocated_values_and_drop_them_for_external_name() {
        let old = json!({"spec": {"type": "ClusterIP", "clusterIP": "10.43.1.2", "clusterIPs": ["10.43.1.2"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "ports": [{"port": 80}]}});
        // A PUT without the allocated fields keeps them.
        let mut new = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 81}]}});
        prepare_update(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.43.1.2");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.43.1.2"]));
        assert_eq!(new["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(new["spec"]["ipFamilyPolicy"], "SingleStack");
        // Changing only clusterIP moves clusterIPs with it, so validation sees the change.
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.43.1.3");
        prepare_update(&old, &mut new);
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.43.1.3"]));
        // To ExternalName with a new clusterIP: kept, for validation to refuse.
        let mut new = old.clone();
        new["spec"]["type"] = json!("ExternalName");
        new["spec"]["clusterIP"] = json!("10.43.1.9");
        new["spec"]["clusterIPs"] = json!(["10.43.1.9"]);
        prepare_update(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.43.1.9");
        assert_eq!(init_ip_fields(&mut new["spec"], Some(&old["spec"]))[0].to_string(), "spec.clusterIPs: Forbidden: may not be set for ExternalName services");
        // To ExternalName: the untouched IP fields go.
        let mut new = old.clone();
        new["spec"]["type"] = json!("ExternalName");
        new["spec"]["externalName"] = json!("db.example.com");
        prepare_update(&old, &mut new);
        for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            assert!(new["spec"].get(k).is_none(), "{k} kept: {new}");
        }
        // From ExternalName: the fields are filled and an address requested.
        let ext = new.clone();
        let mut back = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        prepare_update(&ext, &mut back);
        assert_eq!(back["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(request(&back["spec"]), Request::Dynamic);
    }

    #[test]
    fn ip_address_objects_name_their_service() {
        let a = ip_address(ip("10.43.0.9"), "ns", "web");
        assert_eq!(a["metadata"]["name"], "10.43.0.9");
        assert_eq!(a["metadata"]["labels"][MANAGED_BY_LABEL], "ipallocator.k8s.io");
        assert_eq!(parent_service(&a), Some(("ns", "web")));
        let mut foreign = a.clone();
        foreign["metadata"]["labels"] = json!({});
        assert_eq!(parent_service(&foreign), None);
        assert_eq!(allocated_ips(&json!({"clusterIP": "None", "clusterIPs": ["None"]})), Vec::<String>::new());
        assert_eq!(allocated_ips(&json!({"clusterIP": "10.43.0.9"})), vec!["10.43.0.9".to_string()]);
    }
}
