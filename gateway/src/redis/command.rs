//! What the gateway knows about each Redis command: how it is routed ([`Kind`]), its
//! arity, where its keys are, whether it writes; and the error replies Redis gives for
//! a wrong argument count or an unknown command, word for word.

mod table;

use std::collections::HashMap;
use std::fmt;
use std::iter::StepBy;
use std::ops::{Deref, Range};
use std::sync::OnceLock;

use bytes::Bytes;

use crate::redis::resp::{Value, parse_int};

/// How the gateway handles a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// No key: answered by the gateway (PING, ECHO, TIME, as Envoy does) or sent to any
    /// upstream.
    Keyless,
    /// One key, at `first_key`: routed on it (most data commands).
    SingleKey,
    /// EVAL, EVALSHA and their `_RO` forms: numkeys at index 2, keys after it; all keys
    /// must hash together.
    EvalKeys,
    /// Several keys, all after `first_key`, that cannot be split (PFCOUNT): routed on the
    /// first, refused unless every key lives with it.
    Colocated,
    /// MGET: split per key, replies merged into one array in key order.
    MultiGet,
    /// MSET: key/value pairs split per key; the merged reply is `+OK` unless a part
    /// failed (an error wins).
    MultiSet,
    /// DEL, UNLINK, EXISTS, TOUCH: split per key, the integer replies summed.
    MultiSum,
    /// Connection state, answered by the gateway: AUTH, HELLO, QUIT, SELECT, CLIENT,
    /// READONLY, READWRITE, COMMAND, RESET.
    Connection,
    /// Known but not proxied (transactions, pub/sub, blocking pops, whole-keyspace and
    /// admin commands, multi-key commands Envoy does not split): an error naming it.
    Unsupported,
}

/// One command of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandInfo {
    /// Lower-case name, as Redis writes it in errors and as metrics name it.
    pub name: &'static str,
    /// Redis's arity: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    /// How the gateway handles it.
    pub kind: Kind,
    /// Whether it may change data (Redis's `write` flag): mirroring skips the others
    /// when told to, read policies may send the others to replicas.
    pub write: bool,
    /// Index into the arguments of the first key; 0 for none.
    pub first_key: usize,
}

/// Longest command name in the table (`georadiusbymember_ro`): any longer name is
/// unknown without looking.
const LONGEST_NAME: usize = 20;

/// Number of commands in the table.
pub fn table_len() -> usize {
    table::TABLE.len()
}

/// The place of `info` in the table (what [`lookup`] returns always has one), so
/// per-command state can live in an array instead of a hash map.
pub fn table_index(info: &'static CommandInfo) -> Option<usize> {
    let base = table::TABLE.as_ptr() as usize;
    let offset = (info as *const CommandInfo as usize).checked_sub(base)?;
    let i = offset / std::mem::size_of::<CommandInfo>();
    table::TABLE
        .get(i)
        .filter(|entry| std::ptr::eq(*entry, info))
        .map(|_| i)
}

/// The command named `name`, in any letter case; no allocation.
pub fn lookup(name: &[u8]) -> Option<&'static CommandInfo> {
    if name.len() > LONGEST_NAME {
        return None;
    }
    let mut buf = [0u8; LONGEST_NAME];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    by_name()
        .get(&*lower)
        .map(|&i| &table::TABLE[usize::from(i)])
}

/// The table indexed by name. Every command a client sends is looked up here, and a
/// binary search over ~240 names costs about nine string comparisons; one hash and one
/// comparison cost a fraction of that.
fn by_name() -> &'static HashMap<&'static [u8], u16, foldhash::fast::FixedState> {
    static INDEX: OnceLock<HashMap<&'static [u8], u16, foldhash::fast::FixedState>> =
        OnceLock::new();
    INDEX.get_or_init(|| {
        (0..)
            .zip(table::TABLE.iter())
            .map(|(i, c)| (c.name.as_bytes(), i))
            .collect()
    })
}

/// Redis's arity check for `argc` arguments (name included), with its error:
/// `ERR wrong number of arguments for 'get' command`. MSET also needs whole key/value
/// pairs, which Redis checks the same way.
pub fn check_arity(info: &CommandInfo, argc: usize) -> Result<(), Value> {
    let arity = info.arity.unsigned_abs() as usize;
    let fits = if info.arity >= 0 {
        argc == arity
    } else {
        argc >= arity
    };
    let pairs = info.kind != Kind::MultiSet || argc % 2 == 1;
    if fits && pairs {
        return Ok(());
    }
    Err(Value::error(format!(
        "ERR wrong number of arguments for '{}' command",
        info.name
    )))
}

/// Indices into `args` of the keys of a command that passed [`check_arity`]: none for
/// keyless, connection and unsupported commands; `first_key` for single-key commands;
/// every argument after the name for MGET, DEL, ...; every other one for MSET; the
/// `numkeys` arguments after numkeys for EVAL (possibly none), or Redis's error when
/// numkeys is not a count of the arguments there are.
pub fn key_indices(info: &CommandInfo, args: &[Bytes]) -> Result<StepBy<Range<usize>>, Value> {
    let (range, step) = match info.kind {
        Kind::Keyless | Kind::Connection | Kind::Unsupported => (0..0, 1),
        Kind::SingleKey => (info.first_key..(info.first_key + 1).min(args.len()), 1),
        Kind::MultiGet | Kind::MultiSum => (1..args.len(), 1),
        Kind::Colocated => (info.first_key..args.len(), 1),
        Kind::MultiSet => (1..args.len(), 2),
        Kind::EvalKeys => {
            let numkeys = args
                .get(2)
                .and_then(|n| parse_int(n))
                .ok_or_else(|| Value::error("ERR value is not an integer or out of range"))?;
            if numkeys < 0 {
                return Err(Value::error("ERR Number of keys can't be negative"));
            }
            let available = args.len().saturating_sub(3);
            match usize::try_from(numkeys) {
                Ok(n) if n <= available => (3..3 + n, 1),
                _ => {
                    return Err(Value::error(
                        "ERR Number of keys can't be greater than number of args",
                    ));
                }
            }
        }
    };
    Ok(range.step_by(step))
}

/// Redis's reply to a command it does not know, word for word:
/// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `. Names and arguments
/// are cut at 128 bytes (and at a NUL byte, as in Redis's C string formatting).
pub fn unknown_command(args: &[Bytes]) -> Value {
    /// Redis's `%.128s`.
    const SHOWN: usize = 128;
    let c_str = |b: &[u8]| -> Vec<u8> { b.iter().copied().take_while(|&b| b != 0).collect() };
    let mut name = c_str(args.first().map_or(&[][..], |a| &a[..]));
    name.truncate(SHOWN);
    let mut shown: Vec<u8> = Vec::new();
    for arg in args.iter().skip(1) {
        if shown.len() >= SHOWN {
            break;
        }
        let mut arg = c_str(arg);
        arg.truncate(SHOWN - shown.len());
        shown.push(b'\'');
        shown.extend_from_slice(&arg);
        shown.extend_from_slice(b"' ");
    }
    Value::error(format!(
        "ERR unknown command '{}', with args beginning with: {}",
        String::from_utf8_lossy(&name),
        String::from_utf8_lossy(&shown)
    ))
}

/// The reply to a command the gateway knows but does not proxy:
/// `ERR unsupported command 'multi'`.
pub fn unsupported_command(info: &CommandInfo) -> Value {
    Value::error(format!("ERR unsupported command '{}'", info.name))
}

/// A command name in upper case, held inline for any name up to 32 bytes (every Redis
/// command name), so reading it costs no allocation.
#[derive(Clone)]
pub struct CommandName(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE_NAME] },
    Heap(Box<[u8]>),
}

/// Names up to this long stay on the stack.
const INLINE_NAME: usize = 32;

impl CommandName {
    /// `name` in upper case (ASCII letters only; other bytes unchanged).
    pub fn new(name: &[u8]) -> Self {
        match u8::try_from(name.len()) {
            Ok(len) if name.len() <= INLINE_NAME => {
                let mut buf = [0u8; INLINE_NAME];
                buf[..name.len()].copy_from_slice(name);
                buf.make_ascii_uppercase();
                Self(Repr::Inline { len, buf })
            }
            _ => Self(Repr::Heap(name.to_ascii_uppercase().into_boxed_slice())),
        }
    }

    /// The upper-case bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Heap(bytes) => bytes,
        }
    }
}

impl Deref for CommandName {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for CommandName {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for CommandName {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for CommandName {}

impl PartialEq<[u8]> for CommandName {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_bytes() == other
    }
}

impl PartialEq<&[u8]> for CommandName {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_bytes() == *other
    }
}

impl<const N: usize> PartialEq<[u8; N]> for CommandName {
    fn eq(&self, other: &[u8; N]) -> bool {
        self.as_bytes() == other
    }
}

impl std::hash::Hash for CommandName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(self.as_bytes()), f)
    }
}

impl fmt::Display for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests;
