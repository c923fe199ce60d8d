//! Corefile edits on real Corefiles: kubeadm's default, and one with custom blocks.

use super::*;

/// kubeadm's default Corefile (its CoreDNS addon template, cluster.local).
pub(crate) const KUBEADM: &str = ".:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
";

/// A hand-edited Corefile: a rewrite, hosts, imports, a Consul stub domain with its own
/// block, comments, tabs, and no newline at the end.
pub(crate) const CUSTOM: &str = "# Managed by the platform team.
.:53 {
\terrors
\thealth {
\t\tlameduck 5s
\t}
\tready
\trewrite name regex (.*)\\.corp\\.example\\.com {1}.default.svc.cluster.local answer auto
\tkubernetes cluster.local in-addr.arpa ip6.arpa {
\t\tpods insecure
\t\tfallthrough in-addr.arpa ip6.arpa
\t}
\thosts /etc/coredns/NodeHosts {
\t\tttl 60
\t\treload 15s
\t\tfallthrough
\t}
\tprometheus :9153
\tforward . 8.8.8.8 8.8.4.4 # upstream resolvers
\tcache 30
\tloop
\treload
\tloadbalance
\timport /etc/coredns/custom/*.override
}

consul.local:53 {
\terrors
\tcache 30
\tforward . 10.150.0.1
}
import /etc/coredns/custom/*.server";

fn target() -> SocketAddr {
    "10.96.0.53:53".parse().unwrap()
}

#[test]
fn kubeadm_default_gets_one_block_first_and_loses_it_exactly() {
    let added = add_stub(KUBEADM, "cluster.local", target()).unwrap();
    let expected = format!(
        "{BEGIN_MARKER} (managed by corridor-controller: cluster.local is answered by corridor-dns; removed on uninstall)
cluster.local:53 {{
    errors
    forward . 10.96.0.53 {{
        max_concurrent 1000
    }}
}}
{END_MARKER}
{KUBEADM}"
    );
    assert_eq!(added, expected);
    assert_eq!(added.matches(BEGIN_MARKER).count(), 1);
    assert_eq!(
        add_stub(&added, "cluster.local", target()).unwrap(),
        added,
        "idempotent"
    );
    assert_eq!(remove_stub(&added).unwrap(), KUBEADM);
    assert_eq!(remove_stub(KUBEADM).unwrap(), KUBEADM, "nothing to remove");
}

#[test]
fn custom_corefile_keeps_every_line() {
    let added = add_stub(CUSTOM, "cluster.local.", target()).unwrap();
    assert!(added.ends_with(CUSTOM));
    assert_eq!(added.matches("cluster.local:53 {").count(), 1);
    assert_eq!(add_stub(&added, "Cluster.Local", target()).unwrap(), added);
    assert_eq!(
        remove_stub(&added).unwrap(),
        CUSTOM,
        "byte for byte, no final newline"
    );
    // Only the block's own lines were added.
    let extra = added.lines().count() - CUSTOM.lines().count();
    assert_eq!(extra, 8);
}

#[test]
fn a_new_target_replaces_the_block_where_it_is() {
    // An operator moved the block below the root block.
    let added = add_stub(KUBEADM, "cluster.local", target()).unwrap();
    let block_len = added.len() - KUBEADM.len();
    let moved = format!("{KUBEADM}{}", &added[..block_len]);
    let retargeted = add_stub(&moved, "cluster.local", "[fd00::53]:5353".parse().unwrap()).unwrap();
    assert!(retargeted.starts_with(KUBEADM), "{retargeted}");
    assert!(retargeted.contains("    forward . [fd00::53]:5353 {\n"));
    assert!(!retargeted.contains("10.96.0.53"));
    assert_eq!(retargeted.matches(BEGIN_MARKER).count(), 1);
    assert_eq!(remove_stub(&retargeted).unwrap(), KUBEADM);
    // A port other than 53 is written out.
    let port = add_stub(KUBEADM, "cluster.local", "10.96.0.53:1053".parse().unwrap()).unwrap();
    assert!(port.contains("forward . 10.96.0.53:1053 {"));
}

#[test]
fn duplicate_blocks_collapse_into_one() {
    let added = add_stub(KUBEADM, "cluster.local", target()).unwrap();
    let block = &added[..added.len() - KUBEADM.len()];
    let twice = format!("{block}{KUBEADM}{block}");
    assert_eq!(add_stub(&twice, "cluster.local", target()).unwrap(), added);
    assert_eq!(remove_stub(&twice).unwrap(), KUBEADM);
}

#[test]
fn the_block_listens_where_the_root_block_does() {
    let corefile = KUBEADM.replace(".:53 {", ".:1053 {");
    let added = add_stub(&corefile, "cluster.local", target()).unwrap();
    assert!(added.contains("\ncluster.local:1053 {\n"), "{added}");
    // With no root block at all, the default port.
    let added = add_stub("example.org {\n    whoami\n}\n", "cluster.local", target()).unwrap();
    assert!(added.contains("\ncluster.local:53 {\n"));
}

#[test]
fn refuses_what_would_break_coredns() {
    let taken = format!("{KUBEADM}cluster.local:53 {{\n    forward . 10.0.0.9\n}}\n");
    assert!(matches!(
        add_stub(&taken, "cluster.local", target()),
        Err(CorefileError::ZoneTaken { port: 53, .. })
    ));
    let taken = format!("{KUBEADM}dns://CLUSTER.LOCAL. {{\n    whoami\n}}\n");
    assert!(matches!(
        add_stub(&taken, "cluster.local", target()),
        Err(CorefileError::ZoneTaken { .. })
    ));
    // The zone on another port, a sub-zone, or the zone in a comment is no clash.
    for fine in [
        format!("{KUBEADM}cluster.local:5300 {{\n    whoami\n}}\n"),
        format!("{KUBEADM}svc.cluster.local {{\n    whoami\n}}\n"),
        format!("# cluster.local:53 {{ }}\n{KUBEADM}"),
    ] {
        add_stub(&fine, "cluster.local", target()).unwrap();
    }
    let broken = format!("{BEGIN_MARKER}\ncluster.local:53 {{\n{KUBEADM}");
    assert_eq!(
        remove_stub(&broken),
        Err(CorefileError::Unterminated { line: 1 })
    );
    assert!(add_stub(&broken, "cluster.local", target()).is_err());
    let stray = format!("{KUBEADM}{END_MARKER}\n");
    assert_eq!(
        remove_stub(&stray),
        Err(CorefileError::StrayEnd { line: 21 })
    );
    for zone in ["", ".", "a..b", "bad zone", "x/y"] {
        assert!(add_stub(KUBEADM, zone, target()).is_err(), "{zone:?}");
    }
}
