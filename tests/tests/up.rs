//! `corridor up`: the example mesh in one process answers through the gateway (HTTP,
//! Dubbo and Thrift from its echo backends, Redis from redis-server), routes as its VirtualService says, resolves meshed names to the gateway through its DNS, and
//! follows edits of its manifests.

use std::net::SocketAddr;
use std::path::Path;

use corridor_tests::bin::{Process, binary};
use corridor_tests::dns::dig;
use corridor_tests::{HttpClient, PATIENCE, eventually};
use hyper::Method;

/// The gateway address `corridor up` printed for `host` (its `curl` line).
fn printed_addr(up: &Process, host: &str) -> anyhow::Result<SocketAddr> {
    let line = up
        .stdout
        .snapshot()
        .into_iter()
        .find(|l| l.contains("curl") && l.ends_with(host))
        .ok_or_else(|| anyhow::anyhow!("no curl line for {host} yet"))?;
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| anyhow::anyhow!("no address in {line:?}"))?;
    Ok(addr.parse()?)
}

/// The `dig` line `corridor up` printed for `host`: the DNS server it names.
fn printed_dns(up: &Process, host: &str) -> anyhow::Result<SocketAddr> {
    let line = up
        .stdout
        .snapshot()
        .into_iter()
        .find(|l| l.trim_start().starts_with("dig @") && l.contains(&format!(" {host} ")))
        .ok_or_else(|| anyhow::anyhow!("no dig line for {host}"))?;
    let mut words = line.split_whitespace();
    let ip = words.nth(1).and_then(|w| w.strip_prefix('@')).ok_or_else(|| anyhow::anyhow!("no server in {line:?}"))?;
    let port = words.nth(1).ok_or_else(|| anyhow::anyhow!("no port in {line:?}"))?;
    Ok(format!("{ip}:{port}").parse()?)
}

#[tokio::test]
async fn corridor_up_runs_the_example_mesh() {
    // A copy of examples/, so the test can edit it.
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for entry in std::fs::read_dir(&examples).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        std::fs::copy(&path, tmp.path().join(path.file_name().unwrap_or_default()))
            .unwrap_or_else(|e| panic!("copying {}: {e}", path.display()));
    }
    let mut cmd = std::process::Command::new(binary("corridor"));
    cmd.args([
        "up",
        "--xds-listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--dns-listen",
        "127.0.0.1:0",
        "--examples",
    ])
    .arg(tmp.path());
    let up = Process::spawn("corridor-up", cmd).unwrap_or_else(|e| panic!("{e:#}"));

    let reviews = eventually(
        PATIENCE,
        "corridor up prints the reviews address",
        || async { printed_addr(&up, "reviews.default.svc.cluster.local:9080") },
    )
    .await;
    let ratings = printed_addr(&up, "ratings.default.svc.cluster.local:9080")
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        reviews.ip().to_string().starts_with("127.100."),
        "{reviews}"
    );

    // The printed dig line works: the meshed name answers its gateway address.
    let host = "reviews.default.svc.cluster.local";
    let dns = eventually(PATIENCE, "corridor up prints a dig line", || async { printed_dns(&up, host) }).await;
    let answer = dig::dig(dns, &[host, "A"]).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(answer.addresses(), vec![reviews.ip().to_string()], "{}", answer.text);

    let client = HttpClient::http1();
    let reply = client
        .get(ratings, "/")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(reply.status, 200);
    assert!(
        reply.text().contains("(ratings.default)"),
        "{}",
        reply.text()
    );

    // The VirtualService: `end-user: jason` always goes to v2; the rest splits 90/10.
    for _ in 0..20 {
        let reply = client
            .request(Method::GET, reviews, "/", &[("end-user", "jason")])
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(reply.text().contains("reviews-v2"), "{}", reply.text());
    }
    let mut v1 = 0;
    for _ in 0..200 {
        let reply = client
            .get(reviews, "/")
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        v1 += usize::from(reply.text().contains("reviews-v1"));
    }
    assert!((160..=199).contains(&v1), "90/10 split gave {v1}/200 to v1");

    // The RPC services: the printed corridor-load lines call greeter (Dubbo) and
    // calculator (Thrift) through the gateway, answered by the echo backends.
    for host in ["greeter.default.svc.cluster.local:20880", "calculator.default.svc.cluster.local:9090"] {
        let line = up
            .stdout
            .snapshot()
            .into_iter()
            .find(|l| l.trim_start().starts_with("corridor-load") && l.ends_with(host))
            .unwrap_or_else(|| panic!("no corridor-load line for {host}:\n{}", up.stdout.text()));
        let args: Vec<&str> = line.split('#').next().unwrap_or_default().split_whitespace().skip(1).collect();
        let out = std::process::Command::new(binary("corridor-load"))
            .args(&args)
            .arg("--fail-on-error")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{line}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The Redis cache (redis-server, which tests/run installs, serves its pod): the
    // printed redis-cli line goes through the gateway.
    let host = "cache.default.svc.cluster.local:6379";
    let line = up
        .stdout
        .snapshot()
        .into_iter()
        .find(|l| l.trim_start().starts_with("redis-cli") && l.ends_with(host))
        .unwrap_or_else(|| panic!("no redis-cli line for {host}:\n{}", up.stdout.text()));
    let args: Vec<&str> = line.split('#').next().unwrap_or_default().split_whitespace().skip(1).collect();
    let reply = eventually(PATIENCE, "the cache answers through the gateway", || {
        let args = args.clone();
        async move {
            let out = tokio::process::Command::new("redis-cli").args(&args).output().await?;
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            anyhow::ensure!(text == "OK", "redis-cli said {text:?}");
            Ok(text)
        }
    })
    .await;
    assert_eq!(reply, "OK");

    // Editing the manifests moves the traffic: all of it to v2.
    let file = tmp.path().join("reviews.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    let edited = text
        .replace("weight: 90", "weight: 0")
        .replace("weight: 10", "weight: 100");
    assert_ne!(
        text, edited,
        "the example's weights changed shape; update this test"
    );
    std::fs::write(&file, edited).unwrap_or_else(|e| panic!("{e}"));
    eventually(
        PATIENCE,
        "all reviews traffic on v2 after the edit",
        || async {
            for _ in 0..20 {
                let reply = client.get(reviews, "/").await?;
                anyhow::ensure!(
                    reply.text().contains("reviews-v2"),
                    "still {}",
                    reply.text()
                );
            }
            Ok(())
        },
    )
    .await;
}
