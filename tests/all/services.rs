//! End-to-end: Service ClusterIPs with the real kubectl against `flotilla server` —
//! allocation from `--service-cidr`, Kubernetes' 422 messages for taken and out-of-range
//! addresses, headless and ExternalName Services, release on delete and on a change to
//! ExternalName, the IPAddress and ServiceCIDR objects, and the `kubernetes` Service.

use std::net::Ipv4Addr;
use std::process::Command;

use super::harness::{Cluster, flotilla_bin};

fn server(args: &[&str]) -> Cluster {
    Cluster::start_sub("server", args, &[])
}

fn addr(s: &str) -> Ipv4Addr {
    s.parse().unwrap_or_else(|_| panic!("not an IPv4 address: {s:?}"))
}

/// `kubectl get svc NAME` as (TYPE, CLUSTER-IP, PORT(S)).
fn svc_row(c: &Cluster, name: &str) -> (String, String, String) {
    let out = c.kubectl(&["get", "svc", name]).ok().to_string();
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0][..5], ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"], "{out}");
    (lines[1][1].to_string(), lines[1][2].to_string(), lines[1][4].to_string())
}

/// Names of the IPAddress objects with their parent Service names.
fn ip_addresses(c: &Cluster) -> Vec<String> {
    let out = c.kubectl(&["get", "ipaddresses", "-o", "custom-columns=IP:.metadata.name,SERVICE:.spec.parentRef.name", "--no-headers"]).ok().to_string();
    out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
}

#[test]
fn cluster_ips_are_allocated_checked_and_released() {
    let c = server(&[]);
    assert_eq!(c.kubectl(&["create", "service", "clusterip", "web", "--tcp=80:8080"]).ok(), "service/web created\n");
    let (ty, ip, ports) = svc_row(&c, "web");
    assert_eq!((ty.as_str(), ports.as_str()), ("ClusterIP", "80/TCP"));
    let web = addr(&ip);
    // In 10.43.0.0/16, above the static band (the low 256 addresses).
    assert_eq!(web.octets()[..2], [10, 43]);
    assert!(u32::from(web) > u32::from(Ipv4Addr::new(10, 43, 1, 0)), "{web}");
    assert_eq!(c.jsonpath(&["svc", "web"], "{.spec.clusterIPs} {.spec.ipFamilies} {.spec.ipFamilyPolicy}"), format!(r#"["{ip}"] ["IPv4"] SingleStack"#));

    // A requested address: granted once, refused with Kubernetes' message after.
    c.kubectl(&["create", "service", "clusterip", "pinned", "--tcp=80", "--clusterip=10.43.0.50"]).ok();
    assert_eq!(svc_row(&c, "pinned").1, "10.43.0.50");
    let r = c.kubectl(&["create", "service", "clusterip", "clash", "--tcp=80", "--clusterip=10.43.0.50"]);
    assert!(
        r.err().contains(r#"Service "clash" is invalid: spec.clusterIPs: Invalid value: []string{"10.43.0.50"}: failed to allocate IP 10.43.0.50: provided IP is already allocated"#),
        "{}",
        r.stderr
    );
    let r = c.kubectl(&["create", "service", "clusterip", "far", "--tcp=80", "--clusterip=10.99.0.1"]);
    assert!(
        r.err().contains(r#"Service "far" is invalid: spec.clusterIPs: Invalid value: []string{"10.99.0.1"}: failed to allocate IP 10.99.0.1: the provided network does not match the current range"#),
        "{}",
        r.stderr
    );
    let r = c.kubectl(&["create", "service", "clusterip", "bcast", "--tcp=80", "--clusterip=10.43.255.255"]);
    assert!(r.err().contains("failed to allocate IP 10.43.255.255: the provided IP (10.43.255.255) is not in the valid range. The range of valid IPs is 10.43.0.0/16"), "{}", r.stderr);
    assert!(c.kubectl(&["get", "svc", "clash"]).code != 0, "a refused Service is not stored");

    // Headless and ExternalName Services take no address.
    c.kubectl(&["create", "service", "clusterip", "hl", "--clusterip=None"]).ok();
    assert_eq!(svc_row(&c, "hl").1, "None");
    assert_eq!(c.jsonpath(&["svc", "hl"], "{.spec.clusterIPs}"), r#"["None"]"#);
    c.kubectl(&["create", "service", "externalname", "ext", "--external-name=db.example.com"]).ok();
    assert_eq!(svc_row(&c, "ext"), ("ExternalName".to_string(), "<none>".to_string(), "<none>".to_string()));
    assert_eq!(c.jsonpath(&["svc", "ext"], "{.spec.clusterIP}{.spec.ipFamilies}{.spec.ipFamilyPolicy}"), "");

    let mut ips = ip_addresses(&c);
    ips.sort();
    let mut want = vec!["10.43.0.1 kubernetes".to_string(), "10.43.0.50 pinned".to_string(), format!("{ip} web")];
    want.sort();
    assert_eq!(ips, want);

    // The address may not change; a change to ExternalName releases it, back allocates anew.
    let r = c.kubectl(&["patch", "svc", "web", "-p", r#"{"spec":{"clusterIP":"10.43.0.77"}}"#]);
    assert!(r.err().contains(r#"The Service "web" is invalid: spec.clusterIPs[0]: Invalid value: []string{"10.43.0.77"}: may not change once set"#), "{}", r.stderr);
    c.kubectl(&["patch", "svc", "web", "--type=merge", "-p", r#"{"spec":{"type":"ExternalName","externalName":"web.example.com"}}"#]).ok();
    assert_eq!(c.jsonpath(&["svc", "web"], "{.spec.clusterIP}{.spec.clusterIPs}"), "");
    assert!(!ip_addresses(&c).iter().any(|a| a.ends_with(" web")), "released");
    c.kubectl(&["patch", "svc", "web", "--type=merge", "-p", r#"{"spec":{"type":"ClusterIP","externalName":null}}"#]).ok();
    let again = c.jsonpath(&["svc", "web"], "{.spec.clusterIP}");
    assert!(ip_addresses(&c).contains(&format!("{again} web")), "{again}");

    // Delete releases: the same requested address can be had again.
    c.kubectl(&["delete", "svc", "pinned"]).ok();
    c.kubectl(&["create", "service", "clusterip", "pinned2", "--tcp=80", "--clusterip=10.43.0.50"]).ok();
    assert_eq!(c.jsonpath(&["ipaddress", "10.43.0.50"], "{.spec.parentRef.namespace}/{.spec.parentRef.name}"), "default/pinned2");

    // Re-applying a manifest without clusterIP keeps the address.
    let manifest = "apiVersion: v1\nkind: Service\nmetadata:\n  name: applied\nspec:\n  selector:\n    app: a\n  ports:\n  - port: 80\n";
    assert_eq!(c.kubectl_stdin(&["apply", "-f", "-"], manifest).ok(), "service/applied created\n");
    let first = c.jsonpath(&["svc", "applied"], "{.spec.clusterIP}");
    assert_eq!(c.kubectl_stdin(&["apply", "-f", "-"], manifest).ok(), "service/applied unchanged\n");
    assert_eq!(c.kubectl_stdin(&["replace", "-f", "-"], manifest).ok(), "service/applied replaced\n");
    assert_eq!(c.jsonpath(&["svc", "applied"], "{.spec.clusterIP}"), first);
}

#[test]
fn the_kubernetes_service_and_the_service_cidr_exist() {
    let c = server(&[]);
    assert_eq!(svc_row(&c, "kubernetes"), ("ClusterIP".to_string(), "10.43.0.1".to_string(), "443/TCP".to_string()));
    let port = c.host().rsplit(':').next().expect("port").to_string();
    assert_eq!(c.jsonpath(&["svc", "kubernetes"], "{.spec.ports[0].name} {.spec.ports[0].targetPort} {.spec.selector}"), format!("https {port} "));
    assert_eq!(c.jsonpath(&["endpoints", "kubernetes"], "{.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}"), format!("127.0.0.1:{port}"));
    assert_eq!(c.jsonpath(&["servicecidr", "kubernetes"], "{.spec.cidrs} {.status.conditions[0].type}={.status.conditions[0].status}"), r#"["10.43.0.0/16"] Ready=True"#);
    let out = c.kubectl(&["get", "servicecidrs"]).ok().to_string();
    assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("kubernetes ")), "{out}");
    let out = c.kubectl(&["get", "ipaddresses"]).ok().to_string();
    assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("10.43.0.1 ")), "{out}");
    let out = c.kubectl(&["api-resources", "--api-group=networking.k8s.io", "-o", "name"]).ok().to_string();
    for r in ["ipaddresses.networking.k8s.io", "servicecidrs.networking.k8s.io"] {
        assert!(out.lines().any(|l| l == r), "no {r} in {out}");
    }
    // Deleted, it comes back (the API server keeps it, as kube-apiserver does).
    c.kubectl(&["delete", "svc", "kubernetes"]).ok();
    let start = std::time::Instant::now();
    while c.kubectl(&["get", "svc", "kubernetes"]).code != 0 {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "the kubernetes Service did not come back");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(svc_row(&c, "kubernetes").1, "10.43.0.1");
}

#[test]
fn service_cidr_flag_sets_the_range() {
    let c = server(&["--service-cidr", "10.96.0.0/24", "--cluster-cidr", "10.244.0.0/16"]);
    assert_eq!(svc_row(&c, "kubernetes").1, "10.96.0.1");
    assert_eq!(c.jsonpath(&["servicecidr", "kubernetes"], "{.spec.cidrs}"), r#"["10.96.0.0/24"]"#);
    c.kubectl(&["create", "service", "clusterip", "a", "--tcp=80"]).ok();
    let a = addr(&svc_row(&c, "a").1);
    // /24: the static band is .1-.16; dynamic addresses come from .17-.254.
    assert_eq!(a.octets()[..3], [10, 96, 0]);
    assert!((17..=254).contains(&a.octets()[3]), "{a}");
    let r = c.kubectl(&["create", "service", "clusterip", "b", "--tcp=80", "--clusterip=10.43.0.5"]);
    assert!(r.err().contains("failed to allocate IP 10.43.0.5: the provided network does not match the current range"), "{}", r.stderr);
}

#[test]
fn bad_cidr_flags_are_refused_before_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    for (flags, message) in [
        (&["--service-cidr", "10.43.0.0/33"][..], "invalid value '10.43.0.0/33' for '--service-cidr <CIDR>': invalid CIDR address: 10.43.0.0/33"),
        (&["--cluster-cidr", "fd00::/48"], "fd00::/48 is an IPv6 range; only IPv4 ranges are supported"),
        (&["--service-cidr", "10.0.0.0/8"], "specified --service-cidr 10.0.0.0/8 is too large; for 32-bit addresses, the mask must be >= 12"),
        (&["--service-cidr", "10.42.7.0/24"], "--service-cidr 10.42.7.0/24 overlaps --cluster-cidr 10.42.0.0/16"),
    ] {
        for sub in ["server", "up"] {
            let out = Command::new(flotilla_bin())
                .args([sub, "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(&data)
                .arg("--kubeconfig")
                .arg(dir.path().join("kubeconfig"))
                .args(flags)
                .env("RUST_BACKTRACE", "0")
                .output()
                .expect("run flotilla");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{sub} {flags:?} started");
            assert!(stderr.contains(message), "{sub} {flags:?}: {stderr}");
            assert!(!String::from_utf8_lossy(&out.stdout).contains("ready"));
            assert!(!data.exists(), "{sub} {flags:?} touched the data dir before refusing");
        }
    }
}
