//! A client connection's state (authenticated or not, its name, its id) and the commands
//! the gateway answers itself: AUTH, HELLO, PING, ECHO, TIME, SELECT, CLIENT, QUIT,
//! READONLY/READWRITE, COMMAND, RESET.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::model::redis::RedisProxyConfig;
use crate::redis::resp::Value;

/// Client ids, as `CLIENT ID` reports them.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What the gateway answers with for `HELLO`'s `version` (clients log it).
const VERSION: &str = "7.0.0";

/// One client connection's state.
#[derive(Debug)]
pub struct Session {
    /// Whether commands other than AUTH/HELLO/QUIT may run.
    pub authenticated: bool,
    /// The name set with `CLIENT SETNAME`.
    pub name: Option<Bytes>,
    /// `CLIENT ID`.
    pub id: u64,
    /// Set by QUIT: close after answering.
    pub closing: bool,
}

impl Session {
    /// A new connection: authenticated when the listener asks for no password.
    pub fn new(config: &RedisProxyConfig) -> Session {
        Session {
            authenticated: config.passwords.is_empty(),
            name: None,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            closing: false,
        }
    }

    /// The answer to a connection command (`name` lower-case, arity already checked).
    pub fn answer(&mut self, config: &RedisProxyConfig, name: &str, args: &[Bytes]) -> Value {
        match name {
            "auth" => {
                let (user, password) = match args {
                    [_, p] => (None, p),
                    [_, u, p] => (Some(u), p),
                    _ => return Value::error("ERR syntax error"),
                };
                self.auth(config, user, password)
            }
            "hello" => self.hello(config, args),
            "quit" => {
                self.closing = true;
                Value::ok()
            }
            "select" => match &args[1][..] {
                b"0" => Value::ok(),
                _ => Value::error("ERR only database 0 is available through the gateway"),
            },
            "client" => self.client(args),
            "readonly" | "readwrite" => Value::ok(),
            // No command table to offer: clients (redis-cli's hints) work without one.
            "command" => Value::Array(Vec::new()),
            // Clients' ready checks (ioredis) read `loading:` here.
            "info" => Value::Bulk(Bytes::from(format!(
                "# Server\r\nredis_version:{VERSION}\r\nredis_mode:standalone\r\n\r\n# Persistence\r\nloading:0\r\n\r\n# Replication\r\nrole:master\r\n"
            ))),
            "reset" => {
                self.name = None;
                self.authenticated = config.passwords.is_empty();
                Value::simple("RESET")
            }
            other => Value::error(format!("ERR unsupported command '{other}'")),
        }
    }

    /// PING, ECHO and TIME, answered without an upstream.
    pub fn keyless(name: &str, args: &[Bytes]) -> Value {
        match (name, args) {
            ("ping", [_]) => Value::simple("PONG"),
            ("ping", [_, msg]) | ("echo", [_, msg]) => Value::Bulk(msg.clone()),
            ("time", _) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                Value::Array(vec![
                    Value::Bulk(Bytes::from(now.as_secs().to_string())),
                    Value::Bulk(Bytes::from(now.subsec_micros().to_string())),
                ])
            }
            _ => Value::error(format!(
                "ERR wrong number of arguments for '{name}' command"
            )),
        }
    }

    fn auth(&mut self, config: &RedisProxyConfig, user: Option<&Bytes>, password: &Bytes) -> Value {
        if config.passwords.is_empty() {
            return Value::error(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            );
        }
        let user_ok = match (user, &config.username) {
            (None, _) => true,
            (Some(u), Some(want)) => u[..] == *want.as_bytes(),
            (Some(u), None) => &u[..] == b"default",
        };
        if user_ok
            && config
                .passwords
                .iter()
                .any(|p| p.as_bytes() == &password[..])
        {
            self.authenticated = true;
            Value::ok()
        } else {
            Value::error("WRONGPASS invalid username-password pair or user is disabled.")
        }
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`. RESP2 only: a client asking
    /// for 3 gets NOPROTO and falls back to 2 (as ioredis does).
    fn hello(&mut self, config: &RedisProxyConfig, args: &[Bytes]) -> Value {
        let mut rest = args.iter().skip(1);
        if let Some(v) = rest.next() {
            match &v[..] {
                b"2" => {}
                b"3" => {
                    return Value::error("NOPROTO sorry, this protocol version is not supported.");
                }
                _ => return Value::error("ERR Protocol version is not an integer or out of range"),
            }
        }
        while let Some(opt) = rest.next() {
            if opt.eq_ignore_ascii_case(b"AUTH") {
                let (Some(u), Some(p)) = (rest.next(), rest.next()) else {
                    return Value::error("ERR Syntax error in HELLO option 'auth'");
                };
                let r = self.auth(config, Some(u), p);
                if r.is_error() {
                    return r;
                }
            } else if opt.eq_ignore_ascii_case(b"SETNAME") {
                let Some(n) = rest.next() else {
                    return Value::error("ERR Syntax error in HELLO option 'setname'");
                };
                self.name = Some(n.clone());
            } else {
                return Value::error(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(opt)
                ));
            }
        }
        if !self.authenticated {
            return Value::error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            );
        }
        let field = |k: &'static str, v: Value| [Value::Bulk(Bytes::from_static(k.as_bytes())), v];
        let text = |s: &'static str| Value::Bulk(Bytes::from_static(s.as_bytes()));
        Value::Array(
            [
                field("server", text("redis")),
                field("version", text(VERSION)),
                field("proto", Value::Integer(2)),
                field(
                    "id",
                    Value::Integer(i64::try_from(self.id).unwrap_or(i64::MAX)),
                ),
                field("mode", text("standalone")),
                field("role", text("master")),
                field("modules", Value::Array(Vec::new())),
            ]
            .into_iter()
            .flatten()
            .collect(),
        )
    }

    fn client(&mut self, args: &[Bytes]) -> Value {
        let Some(sub) = args.get(1) else {
            return Value::error("ERR wrong number of arguments for 'client' command");
        };
        let sub = sub.to_ascii_uppercase();
        match (&sub[..], args.len()) {
            (b"SETNAME", 3) => {
                if args[2].iter().any(|b| *b == b' ' || *b == b'\n') {
                    return Value::error(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    );
                }
                self.name = Some(args[2].clone()).filter(|n| !n.is_empty());
                Value::ok()
            }
            (b"GETNAME", 2) => self.name.clone().map_or(Value::NullBulk, Value::Bulk),
            (b"ID", 2) => Value::Integer(i64::try_from(self.id).unwrap_or(i64::MAX)),
            // Library name and version: nothing to keep.
            (b"SETINFO", 4) => Value::ok(),
            (b"SETNAME" | b"GETNAME" | b"ID" | b"SETINFO", _) => Value::error(format!(
                "ERR wrong number of arguments for 'client|{}' command",
                String::from_utf8_lossy(&sub).to_lowercase()
            )),
            _ => Value::error(format!(
                "ERR unsupported command 'client {}'",
                String::from_utf8_lossy(&sub).to_lowercase()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::redis::DEFAULT_OP_TIMEOUT;

    fn config(passwords: &[&str]) -> RedisProxyConfig {
        RedisProxyConfig {
            routes: Vec::new(),
            case_insensitive: false,
            catch_all: None,
            op_timeout: DEFAULT_OP_TIMEOUT,
            hashtagging: true,
            redirection: false,
            read_policy: crate::model::redis::ReadPolicy::Master,
            passwords: passwords.iter().map(|p| p.to_string()).collect(),
            username: None,
            faults: Vec::new(),
        }
    }

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn error_text(v: &Value) -> String {
        match v {
            Value::Error(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn auth_with_a_wrong_password_is_wrongpass_and_the_right_one_opens_the_session() {
        let c = config(&["s3cret"]);
        let mut s = Session::new(&c);
        assert!(!s.authenticated);
        assert!(
            error_text(&s.answer(&c, "auth", &args(&["AUTH", "nope"]))).starts_with("WRONGPASS")
        );
        assert!(
            error_text(&s.answer(&c, "auth", &args(&["AUTH", "bob", "s3cret"])))
                .starts_with("WRONGPASS"),
            "only `default` without a username set"
        );
        assert_eq!(
            s.answer(&c, "auth", &args(&["AUTH", "default", "s3cret"])),
            Value::ok()
        );
        assert!(s.authenticated);
    }

    #[test]
    fn hello_answers_resp2_refuses_3_and_can_authenticate() {
        let c = config(&["pw"]);
        let mut s = Session::new(&c);
        assert!(error_text(&s.answer(&c, "hello", &args(&["HELLO", "3"]))).starts_with("NOPROTO"));
        assert!(error_text(&s.answer(&c, "hello", &args(&["HELLO", "2"]))).starts_with("NOAUTH"));
        let Value::Array(fields) = s.answer(
            &c,
            "hello",
            &args(&["HELLO", "2", "AUTH", "default", "pw", "SETNAME", "app"]),
        ) else {
            panic!("HELLO 2 is a map as an array")
        };
        assert_eq!(fields[0], Value::bulk("server"));
        assert!(fields.contains(&Value::Integer(2)));
        assert_eq!(s.name.as_deref(), Some(&b"app"[..]));
    }

    #[test]
    fn client_commands_keep_the_name_and_refuse_the_rest() {
        let c = config(&[]);
        let mut s = Session::new(&c);
        assert_eq!(
            s.answer(&c, "client", &args(&["client", "setname", "worker-1"])),
            Value::ok()
        );
        assert_eq!(
            s.answer(&c, "client", &args(&["CLIENT", "GETNAME"])),
            Value::bulk("worker-1")
        );
        assert_eq!(
            s.answer(
                &c,
                "client",
                &args(&["CLIENT", "SETINFO", "LIB-NAME", "ioredis"])
            ),
            Value::ok()
        );
        assert!(
            error_text(&s.answer(&c, "client", &args(&["CLIENT", "KILL", "x"])))
                .contains("client kill")
        );
        assert!(error_text(&s.answer(&c, "select", &args(&["SELECT", "2"]))).starts_with("ERR"));
        assert_eq!(
            Session::keyless("ping", &args(&["PING"])),
            Value::simple("PONG")
        );
        assert_eq!(
            Session::keyless("echo", &args(&["ECHO", "hi"])),
            Value::bulk("hi")
        );
    }
}
