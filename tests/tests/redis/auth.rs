//! Passwords at both ends. Downstream: a RedisService's `settings.auth` makes clients
//! AUTH against the gateway (NOAUTH before, WRONGPASS when wrong). Upstream: a
//! RedisDestination's `auth` is what the gateway presents to redis-servers that require
//! a password, so the application carries none.

use std::net::SocketAddr;

use corridor_tests::Mesh;
use corridor_tests::node::redis_client;
use corridor_tests::redis::{RedisCli, RedisOptions, RedisServer, Resp, RespConn};
use serde_json::{Value, json};

use super::{OrPanic, aeraki, gateway_addr, redis_objects, secret, server, start, value_on};

/// `front-secret` and a newline, as `echo front-secret | base64` gives it.
const FRONT_SECRET_B64: &str = "ZnJvbnQtc2VjcmV0Cg==";
/// `app`, base64.
const APP_B64: &str = "YXBw";
/// `app-pw` and a newline, as `echo app-pw | base64` gives it.
const APP_PW_B64: &str = "YXBwLXB3Cg==";

/// `cache` in front of one password-less redis-server, its RedisService asking clients
/// for `auth`; with `secret_data`, a Secret `front-auth` holding it alongside.
async fn guarded_mesh(
    tag: &str,
    auth: Value,
    secret_data: Option<Value>,
) -> (Mesh, RedisServer, SocketAddr) {
    let mut mesh = Mesh::new(tag);
    let redis = server(&mut mesh, RedisOptions::new()).await;
    let mut objects = redis_objects(&mesh, "cache", "redis", &[&redis]);
    objects.push(aeraki(
        &mesh,
        "RedisService",
        "cache",
        json!({ "host": ["cache"], "settings": { "auth": auth } }),
    ));
    if let Some(data) = secret_data {
        objects.push(secret(&mesh, "front-auth", data));
    }
    start(&mut mesh, objects, &[]).await;
    let addr = gateway_addr(&mesh, "cache").await;
    (mesh, redis, addr)
}

fn is_error_starting(reply: &Resp, prefix: &str) -> bool {
    reply.as_error().is_some_and(|e| e.starts_with(prefix))
}

#[tokio::test]
async fn clients_must_auth_with_the_downstream_password() {
    let auth = json!({ "plain": { "password": "front-pw" } });
    let (_mesh, redis, addr) = guarded_mesh("redis-auth-down", auth, None).await;

    let mut conn = RespConn::connect(addr).await.or_panic();
    let before = conn.command(&["SET", "k", "anonymous"]).await.or_panic();
    assert!(is_error_starting(&before, "NOAUTH"), "{before:?}");
    let wrong = conn.command(&["AUTH", "not-it"]).await.or_panic();
    assert!(is_error_starting(&wrong, "WRONGPASS"), "{wrong:?}");
    let still = conn.command(&["GET", "k"]).await.or_panic();
    assert!(
        is_error_starting(&still, "NOAUTH"),
        "a wrong AUTH let the client in: {still:?}"
    );
    assert_eq!(
        conn.command(&["AUTH", "front-pw"]).await.or_panic(),
        Resp::Simple("OK".into())
    );
    assert_eq!(
        conn.command(&["SET", "k", "mine"]).await.or_panic(),
        Resp::Simple("OK".into())
    );
    assert_eq!(value_on(&redis, "k").await.as_deref(), Some("mine"));

    let cli = RedisCli::new(addr).password("front-pw");
    assert_eq!(cli.run(&["GET", "k"]).await.or_panic(), "mine");
    let refused = RedisCli::new(addr)
        .password("nope")
        .output(&["GET", "k"])
        .await
        .or_panic();
    assert!(
        refused.stderr.contains("WRONGPASS") || refused.stdout.contains("WRONGPASS"),
        "{refused:?}"
    );
    assert!(!refused.stdout.contains("mine"), "{refused:?}");
    let anonymous = RedisCli::new(addr)
        .typed()
        .run(&["GET", "k"])
        .await
        .or_panic();
    assert!(anonymous.starts_with("(error) NOAUTH"), "{anonymous}");
}

#[tokio::test]
async fn ioredis_authenticates_with_the_downstream_password() {
    let auth = json!({ "plain": { "password": "front-pw" } });
    let (_mesh, redis, addr) = guarded_mesh("redis-auth-ioredis", auth, None).await;
    // ioredis with a password starts with `HELLO 3 AUTH default <password>`; on NOPROTO
    // it falls back to RESP2 and AUTH.
    let run = redis_client(
        addr,
        &[
            "--password",
            "front-pw",
            "--no-reconnect",
            "--timeout",
            "10",
        ],
        &[&["SET", "k", "from ioredis"], &["GET", "k"]],
    )
    .await
    .or_panic();
    assert_eq!(run.connections, 1, "{run:?}");
    assert_eq!(run.calls[0].text(), Some("OK"), "{run:?}");
    assert_eq!(run.calls[1].text(), Some("from ioredis"), "{run:?}");
    assert_eq!(value_on(&redis, "k").await.as_deref(), Some("from ioredis"));

    let refused = redis_client(
        addr,
        &["--password", "wrong", "--no-reconnect", "--timeout", "10"],
        &[&["GET", "k"]],
    )
    .await
    .or_panic();
    assert!(
        refused.calls[0].error_message().contains("WRONGPASS"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_downstream_password_and_user_can_come_from_a_secret() {
    let auth = json!({
        "secret": { "name": "front-auth", "passwordField": "pw", "usernameField": "user" }
    });
    let data = json!({ "pw": FRONT_SECRET_B64, "user": APP_B64 });
    let (_mesh, redis, addr) = guarded_mesh("redis-auth-secret", auth, Some(data)).await;

    let mut conn = RespConn::connect(addr).await.or_panic();
    let before = conn.command(&["GET", "k"]).await.or_panic();
    assert!(is_error_starting(&before, "NOAUTH"), "{before:?}");
    // The Secret's value without its trailing newline is the password.
    let with_newline = conn
        .command(&["AUTH", "app", "front-secret\n"])
        .await
        .or_panic();
    assert!(
        is_error_starting(&with_newline, "WRONGPASS"),
        "{with_newline:?}"
    );
    let wrong_user = conn
        .command(&["AUTH", "someone", "front-secret"])
        .await
        .or_panic();
    assert!(
        is_error_starting(&wrong_user, "WRONGPASS"),
        "{wrong_user:?}"
    );
    assert_eq!(
        conn.command(&["AUTH", "app", "front-secret"])
            .await
            .or_panic(),
        Resp::Simple("OK".into())
    );
    assert_eq!(
        conn.command(&["SET", "k", "v"]).await.or_panic(),
        Resp::Simple("OK".into())
    );

    let cli = RedisCli::new(addr).user("app").password("front-secret");
    assert_eq!(cli.run(&["GET", "k"]).await.or_panic(), "v");
    let wrong = RedisCli::new(addr)
        .user("app")
        .password("front-pw")
        .output(&["GET", "k"])
        .await
        .or_panic();
    assert!(
        wrong.stderr.contains("WRONGPASS") || wrong.stdout.contains("WRONGPASS"),
        "{wrong:?}"
    );
    assert_eq!(value_on(&redis, "k").await.as_deref(), Some("v"));
}

#[tokio::test]
async fn the_mesh_holds_the_upstream_credentials() {
    let mut mesh = Mesh::new("redis-auth-up");
    // One server with a password for the default user, one with an ACL user.
    let plain = server(&mut mesh, RedisOptions::new().password("up-pw")).await;
    let acl = server(
        &mut mesh,
        RedisOptions::new()
            .password("admin-pw")
            .user("app", "app-pw"),
    )
    .await;
    let mut objects = redis_objects(&mesh, "plain", "redis", &[&plain]);
    objects.extend(redis_objects(&mesh, "acl", "tcp-redis-acl", &[&acl]));
    let destination = |host: &str, auth: Value| {
        json!({
            "host": host,
            "trafficPolicy": { "connectionPool": { "redis": { "mode": "PROXY", "auth": auth } } },
        })
    };
    objects.push(aeraki(
        &mesh,
        "RedisDestination",
        "plain",
        destination("plain", json!({ "plain": { "password": "up-pw" } })),
    ));
    objects.push(aeraki(
        &mesh,
        "RedisDestination",
        "acl",
        destination(
            "acl",
            json!({ "secret": { "name": "acl-auth", "usernameField": "username" } }),
        ),
    ));
    objects.push(secret(
        &mesh,
        "acl-auth",
        json!({ "username": APP_B64, "password": APP_PW_B64 }),
    ));
    start(&mut mesh, objects, &[]).await;

    for (service, redis) in [("plain", &plain), ("acl", &acl)] {
        let addr = gateway_addr(&mesh, service).await;
        // No credentials on the client side.
        let cli = RedisCli::new(addr);
        assert_eq!(
            cli.run(&["SET", "k", service]).await.or_panic(),
            "OK",
            "SET through {service}"
        );
        assert_eq!(cli.run(&["GET", "k"]).await.or_panic(), service);
        assert_eq!(
            cli.run(&["MSET", "a", "1", "b", "2"]).await.or_panic(),
            "OK"
        );
        assert_eq!(value_on(redis, "k").await.as_deref(), Some(service));
        assert_eq!(value_on(redis, "b").await.as_deref(), Some("2"));
    }
    // The ACL server saw the gateway as `app`, not as the default user.
    let clients = acl.command(&["CLIENT", "LIST"]).await.or_panic();
    let clients = clients.as_str().unwrap_or_default().to_string();
    assert!(
        clients.lines().any(|l| l.contains(" user=app ")),
        "no connection authenticated as app: {clients}"
    );
    // And the servers really do require a password.
    let anonymous = RespConn::connect(plain.addr)
        .await
        .or_panic()
        .command(&["GET", "k"])
        .await
        .or_panic();
    assert!(is_error_starting(&anonymous, "NOAUTH"), "{anonymous:?}");
}

#[tokio::test]
async fn a_wrong_upstream_password_gives_error_replies() {
    let mut mesh = Mesh::new("redis-auth-up-wrong");
    let redis = server(&mut mesh, RedisOptions::new().password("right-pw")).await;
    let mut objects = redis_objects(&mesh, "cache", "redis", &[&redis]);
    objects.push(aeraki(
        &mesh,
        "RedisDestination",
        "cache",
        json!({
            "host": "cache",
            "trafficPolicy": { "connectionPool": { "redis": {
                "auth": { "plain": { "password": "wrong-pw" } }
            } } },
        }),
    ));
    start(&mut mesh, objects, &[]).await;
    let addr = gateway_addr(&mesh, "cache").await;
    let mut conn = RespConn::connect(addr).await.or_panic();
    // Each command is answered (with an error), none hangs, the connection stays.
    for _ in 0..3 {
        let reply = conn.command(&["SET", "k", "v"]).await.or_panic();
        assert!(
            reply.as_error().is_some(),
            "SET with a refused upstream AUTH: {reply:?}"
        );
    }
    assert_eq!(
        conn.command(&["PING"]).await.or_panic(),
        Resp::Simple("PONG".into())
    );
    assert_eq!(
        redis.command(&["EXISTS", "k"]).await.or_panic(),
        Resp::Integer(0)
    );
}
