use bytes::Bytes;

use super::*;

fn args(words: &[&str]) -> Vec<Bytes> {
    words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

fn error_text(v: Value) -> String {
    match v {
        Value::Error(text) => String::from_utf8(text.to_vec()).unwrap(),
        other => panic!("not an error: {other:?}"),
    }
}

#[test]
fn table_is_sorted_unique_and_lower_case() {
    for pair in table::TABLE.windows(2) {
        assert!(
            pair[0].name < pair[1].name,
            "{} / {}",
            pair[0].name,
            pair[1].name
        );
    }
    for c in table::TABLE {
        assert_eq!(c.name, c.name.to_ascii_lowercase());
        assert!(c.name.len() <= LONGEST_NAME, "{}", c.name);
        assert_ne!(c.arity, 0, "{}", c.name);
    }
    assert!(table::TABLE.iter().any(|c| c.name.len() == LONGEST_NAME));
}

#[test]
fn every_command_is_found_in_any_case() {
    for c in table::TABLE {
        assert_eq!(lookup(c.name.as_bytes()), Some(c));
        assert_eq!(lookup(c.name.to_ascii_uppercase().as_bytes()), Some(c));
    }
    assert_eq!(lookup(b"GeT").map(|c| c.name), Some("get"));
    assert_eq!(lookup(b"bF.aDd").map(|c| c.name), Some("bf.add"));
    assert_eq!(lookup(b"foo"), None);
    assert_eq!(lookup(b""), None);
    assert_eq!(lookup(b"get "), None);
    assert_eq!(lookup(&[b'g'; 100]), None);
}

#[test]
fn kinds_follow_envoy() {
    let kind = |name: &str| lookup(name.as_bytes()).unwrap().kind;
    for name in ["get", "set", "hset", "zadd", "xadd", "publish", "getex"] {
        assert_eq!(kind(name), Kind::SingleKey, "{name}");
    }
    for name in ["eval", "evalsha", "eval_ro", "evalsha_ro"] {
        assert_eq!(kind(name), Kind::EvalKeys, "{name}");
    }
    for name in ["del", "unlink", "exists", "touch"] {
        assert_eq!(kind(name), Kind::MultiSum, "{name}");
    }
    // Several keys that cannot be split: refused unless they live together.
    assert_eq!(kind("pfcount"), Kind::Colocated);
    assert_eq!(kind("mget"), Kind::MultiGet);
    assert_eq!(kind("mset"), Kind::MultiSet);
    for name in ["ping", "echo", "time"] {
        assert_eq!(kind(name), Kind::Keyless, "{name}");
    }
    for name in [
        "auth", "hello", "quit", "select", "client", "readonly", "command", "info",
    ] {
        assert_eq!(kind(name), Kind::Connection, "{name}");
    }
    for name in [
        "multi",
        "exec",
        "watch",
        "subscribe",
        "keys",
        "scan",
        "blpop",
        "msetnx",
        // Two keys, as RPOPLPUSH and SMOVE: the element would land on the first key's
        // server whatever the second key's is.
        "lmove",
        "rpoplpush",
    ] {
        assert_eq!(kind(name), Kind::Unsupported, "{name}");
    }
}

#[test]
fn facts_from_redis_command_info() {
    let get = lookup(b"get").unwrap();
    assert_eq!((get.arity, get.first_key, get.write), (2, 1, false));
    let set = lookup(b"set").unwrap();
    assert_eq!((set.arity, set.first_key, set.write), (-3, 1, true));
    let eval = lookup(b"eval").unwrap();
    assert_eq!((eval.arity, eval.first_key, eval.write), (-3, 3, true));
    assert!(!lookup(b"eval_ro").unwrap().write);
    assert_eq!(lookup(b"hello").unwrap().arity, -1);
    assert_eq!(lookup(b"geosearchstore").unwrap().arity, -8);
    for c in table::TABLE {
        let keyed = matches!(c.kind, Kind::SingleKey | Kind::EvalKeys | Kind::Colocated)
            || matches!(c.kind, Kind::MultiGet | Kind::MultiSet | Kind::MultiSum);
        if keyed {
            assert!(c.first_key > 0, "{}", c.name);
            // EVAL's keys may be none at all.
            let least = c.arity.unsigned_abs() as usize + usize::from(c.kind == Kind::EvalKeys);
            assert!(least > c.first_key, "{}", c.name);
        }
        if matches!(c.kind, Kind::Keyless | Kind::Connection) {
            assert_eq!(c.first_key, 0, "{}", c.name);
        }
    }
}

#[test]
fn arity_errors_match_redis() {
    // Texts as redis-server 7.0.15 sends them.
    let get = lookup(b"GET").unwrap();
    assert_eq!(check_arity(get, 2), Ok(()));
    assert_eq!(
        error_text(check_arity(get, 1).unwrap_err()),
        "ERR wrong number of arguments for 'get' command"
    );
    assert!(check_arity(get, 3).is_err());
    let set = lookup(b"set").unwrap();
    assert!(check_arity(set, 2).is_err());
    assert_eq!(check_arity(set, 3), Ok(()));
    assert_eq!(check_arity(set, 7), Ok(()));
    let mset = lookup(b"mset").unwrap();
    assert_eq!(check_arity(mset, 5), Ok(()));
    assert_eq!(
        error_text(check_arity(mset, 4).unwrap_err()),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert!(check_arity(lookup(b"hset").unwrap(), 3).is_err());
}

#[test]
fn key_positions() {
    let keys = |words: &[&str]| -> Result<Vec<usize>, String> {
        let args = args(words);
        let info = lookup(&args[0]).unwrap();
        key_indices(info, &args)
            .map(|k| k.collect())
            .map_err(error_text)
    };
    assert_eq!(keys(&["GET", "k"]), Ok(vec![1]));
    assert_eq!(keys(&["SET", "k", "v", "EX", "10"]), Ok(vec![1]));
    assert_eq!(keys(&["MGET", "a", "b", "c"]), Ok(vec![1, 2, 3]));
    assert_eq!(keys(&["DEL", "a", "b"]), Ok(vec![1, 2]));
    assert_eq!(keys(&["MSET", "a", "1", "b", "2"]), Ok(vec![1, 3]));
    assert_eq!(keys(&["PING"]), Ok(vec![]));
    assert_eq!(keys(&["MULTI"]), Ok(vec![]));
    assert_eq!(keys(&["EVAL", "s", "2", "a", "b", "arg"]), Ok(vec![3, 4]));
    assert_eq!(keys(&["EVAL", "s", "0"]), Ok(vec![]));
    // Redis 7.0.15's own errors.
    assert_eq!(
        keys(&["EVAL", "s", "2", "a"]),
        Err("ERR Number of keys can't be greater than number of args".into())
    );
    assert_eq!(
        keys(&["EVAL", "s", "-1"]),
        Err("ERR Number of keys can't be negative".into())
    );
    for bad in ["x", "01", "+1", "-0", ""] {
        assert_eq!(
            keys(&["EVALSHA", "s", bad]),
            Err("ERR value is not an integer or out of range".into()),
            "{bad:?}"
        );
    }
}

#[test]
fn unknown_command_text_matches_redis() {
    // Texts as redis-server 7.0.15 sends them.
    assert_eq!(
        error_text(unknown_command(&args(&["foo", "a", "b", "c"]))),
        "ERR unknown command 'foo', with args beginning with: 'a' 'b' 'c' "
    );
    assert_eq!(
        error_text(unknown_command(&args(&["foo"]))),
        "ERR unknown command 'foo', with args beginning with: "
    );
    let long = "x".repeat(200);
    let want = format!(
        "ERR unknown command 'FOO', with args beginning with: '{}' ",
        "x".repeat(128)
    );
    assert_eq!(
        error_text(unknown_command(&args(&["FOO", &long, "yyy"]))),
        want
    );
    assert_eq!(
        error_text(unknown_command(&[Bytes::from_static(b"\0")])),
        "ERR unknown command '', with args beginning with: "
    );
    // CR and LF in what a client sent cannot break the reply.
    assert_eq!(
        error_text(unknown_command(&args(&["a\r\nb"]))),
        "ERR unknown command 'a  b', with args beginning with: "
    );
    assert_eq!(
        error_text(unsupported_command(lookup(b"MULTI").unwrap())),
        "ERR unsupported command 'multi'"
    );
}

#[test]
fn upper_case_names() {
    let name = CommandName::new(b"get");
    assert_eq!(name.as_bytes(), b"GET");
    assert_eq!(name, *b"GET");
    assert_eq!(name, &b"GET"[..]);
    assert_eq!(CommandName::new(b"bf.add").as_bytes(), b"BF.ADD");
    assert_eq!(CommandName::new(b"").as_bytes(), b"");
    let long = vec![b'a'; 40];
    assert_eq!(CommandName::new(&long).as_bytes(), &vec![b'A'; 40][..]);
    let exact = vec![b'z'; INLINE_NAME];
    assert_eq!(
        CommandName::new(&exact).as_bytes(),
        &vec![b'Z'; INLINE_NAME][..]
    );
    assert_eq!(format!("{:?}", CommandName::new(b"Ping")), "\"PING\"");
}

#[test]
fn every_command_has_its_own_table_index() {
    let mut seen = std::collections::BTreeSet::new();
    for c in table::TABLE {
        let info = lookup(c.name.as_bytes()).unwrap();
        let i = table_index(info).unwrap();
        assert!(i < table_len());
        assert_eq!(table::TABLE[i].name, c.name);
        assert!(seen.insert(i));
    }
    assert_eq!(seen.len(), table_len());
    // An entry that is not the table's own has no index.
    let copy: &'static CommandInfo = Box::leak(Box::new(table::TABLE[0].clone()));
    assert_eq!(table_index(copy), None);
}
