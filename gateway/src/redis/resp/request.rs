//! The client side: commands as clients send them, arrays of bulk strings or inline
//! lines, read the way `redis-server` reads them (same limits, same error texts).

use bytes::{Buf, Bytes, BytesMut};

use super::encode::{command_len, encode_command};
use super::inline::split_args;
use super::line::{LineScanner, parse_int};
use super::whole;
use super::{
    PROTO_INLINE_MAX_SIZE, PROTO_MAX_BULK_LEN, PROTO_MAX_MULTIBULK_LEN, RespError, show_byte,
};
use crate::redis::command::CommandName;

/// Smallest wire size of one argument (`$0\r\n\r\n`): what a declared argument count
/// must at least cost, to refuse a count the size limit cannot hold before reading on.
const MIN_ARG_BYTES: usize = 6;

/// Most argument slots reserved up front: a client declaring a million arguments has to
/// send them before the vector grows to hold them.
const PREALLOC_ARGS: usize = 1024;

/// One command from a client.
#[derive(Debug, Clone)]
pub struct Command {
    /// The name and arguments; never empty when it comes from [`CommandDecoder`].
    pub args: Vec<Bytes>,
    /// Bytes the command took on the wire (for an inline command, its line).
    pub bytes: usize,
    /// The command's wire bytes when they are exactly what [`Command::encode`] writes (a
    /// short command read whole): sent on as they are instead of being encoded again.
    pub wire: Option<Bytes>,
}

/// Commands are equal when their arguments are: `wire` only caches their encoding.
impl PartialEq for Command {
    fn eq(&self, other: &Self) -> bool {
        self.args == other.args && self.bytes == other.bytes
    }
}

impl Eq for Command {}

impl Command {
    /// A command built by the gateway (`AUTH`, `CLUSTER SLOTS`); its size is that of
    /// its RESP encoding.
    pub fn new(args: Vec<Bytes>) -> Self {
        let bytes = command_len(&args);
        Self {
            args,
            bytes,
            wire: None,
        }
    }

    /// The command name as sent (empty if there are no arguments).
    pub fn name(&self) -> &[u8] {
        self.args.first().map_or(&[], |a| &a[..])
    }

    /// The command name in upper case, without allocating for any real command name.
    pub fn name_upper(&self) -> CommandName {
        CommandName::new(self.name())
    }

    /// Appends the command as a RESP array of bulk strings (inline commands too).
    pub fn encode(&self, out: &mut BytesMut) {
        encode_command(&self.args, out);
    }
}

/// Reads commands off a client's byte stream, resuming where the last call stopped.
///
/// A line starting with `*` is a RESP array of bulk strings; anything else is an inline
/// command (`PING\r\n`), split with Redis's quoting rules. As in Redis, empty arrays
/// (`*0`, `*-1`) and blank inline lines are skipped, lines are at most 64 KiB and bulk
/// strings at most 512 MiB; on top of that a command is refused once it is known to
/// exceed `max_request` bytes. Unlike Redis, which skips any two bytes after a bulk
/// string, the decoder requires them to be CRLF.
#[derive(Debug)]
pub struct CommandDecoder {
    max_request: usize,
    lines: LineScanner,
    /// The array being read, once its `*N` line has been taken.
    partial: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    args: Vec<Bytes>,
    /// Arguments still to come.
    remaining: usize,
    /// The length of the bulk string being waited for, once its `$` line is taken.
    bulk: Option<usize>,
    /// Wire bytes of the command taken off the buffer so far.
    bytes: usize,
}

/// What one step of decoding made of the buffer.
enum Step {
    Done(Command),
    /// An empty command was consumed: look again.
    Skipped,
    /// An array header was consumed: read its arguments.
    Started,
    NeedMore,
}

impl CommandDecoder {
    /// A decoder refusing commands larger than `max_request` bytes on the wire.
    pub fn new(max_request: usize) -> Self {
        Self {
            max_request,
            lines: LineScanner::default(),
            partial: None,
        }
    }

    /// Takes the next whole command off `buf`; `Ok(None)` means more bytes are needed.
    ///
    /// Bytes of an unfinished command may already be taken off `buf`: the decoder keeps
    /// them until the command is whole.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, RespError> {
        loop {
            let step = if self.partial.is_some() {
                self.arguments(buf)?
            } else if buf.is_empty() {
                Step::NeedMore
            } else if buf[0] == b'*' {
                if let Some((wire, args)) = whole::take(buf, self.max_request) {
                    self.lines.consumed(wire.len());
                    return Ok(Some(Command {
                        args,
                        bytes: wire.len(),
                        wire: Some(wire),
                    }));
                }
                self.array_header(buf)?
            } else {
                self.inline(buf)?
            };
            match step {
                Step::Done(command) => return Ok(Some(command)),
                Step::Skipped | Step::Started => continue,
                Step::NeedMore => return Ok(None),
            }
        }
    }

    /// Bytes examined so far (tests prove linear work with it).
    #[cfg(test)]
    pub(super) fn examined(&self) -> u64 {
        self.lines.examined
    }

    fn array_header(&mut self, buf: &mut BytesMut) -> Result<Step, RespError> {
        let invalid = || RespError::protocol("invalid multibulk length");
        let Some(n) = self.lines.crlf(buf).map_err(|_| invalid())? else {
            partial_line(buf.len(), 0, self.max_request, "too big mbulk count string")?;
            return Ok(Step::NeedMore);
        };
        if n > PROTO_INLINE_MAX_SIZE {
            return Err(RespError::protocol("too big mbulk count string"));
        }
        let count = parse_int(&buf[1..n]).ok_or_else(invalid)?;
        buf.advance(n + 2);
        // Redis skips `*0` and every negative count; only -1 (a null array) means
        // anything in RESP, so other negative counts are refused here.
        let count = match count {
            0 | -1 => return Ok(Step::Skipped),
            c if c < 0 => return Err(invalid()),
            c => usize::try_from(c).map_err(|_| invalid())?,
        };
        if count > PROTO_MAX_MULTIBULK_LEN {
            return Err(invalid());
        }
        let least = (n + 2).saturating_add(count.saturating_mul(MIN_ARG_BYTES));
        if least > self.max_request {
            return Err(self.too_large(least));
        }
        self.partial = Some(Partial {
            args: Vec::with_capacity(count.min(PREALLOC_ARGS)),
            remaining: count,
            bulk: None,
            bytes: n + 2,
        });
        Ok(Step::Started)
    }

    fn arguments(&mut self, buf: &mut BytesMut) -> Result<Step, RespError> {
        let max = self.max_request;
        let Some(p) = self.partial.as_mut() else {
            return Ok(Step::NeedMore);
        };
        while p.remaining > 0 {
            let len = match p.bulk {
                Some(len) => len,
                None => {
                    let Some(&first) = buf.first() else {
                        return Ok(Step::NeedMore);
                    };
                    if first != b'$' {
                        return Err(RespError::protocol(format!(
                            "expected '$', got '{}'",
                            show_byte(first)
                        )));
                    }
                    let invalid = || RespError::protocol("invalid bulk length");
                    let Some(n) = self.lines.crlf(buf).map_err(|_| invalid())? else {
                        partial_line(buf.len(), p.bytes, max, "too big bulk count string")?;
                        return Ok(Step::NeedMore);
                    };
                    if n > PROTO_INLINE_MAX_SIZE {
                        return Err(RespError::protocol("too big bulk count string"));
                    }
                    let len = parse_int(&buf[1..n])
                        .and_then(|l| usize::try_from(l).ok())
                        .filter(|&l| l <= PROTO_MAX_BULK_LEN)
                        .ok_or_else(invalid)?;
                    p.bytes += n + 2;
                    let least = p.bytes + len + 2;
                    if least > max {
                        return Err(RespError::TooLarge { len: least, max });
                    }
                    buf.advance(n + 2);
                    p.bulk = Some(len);
                    len
                }
            };
            if buf.len() < len + 2 {
                return Ok(Step::NeedMore);
            }
            if &buf[len..len + 2] != b"\r\n" {
                return Err(RespError::protocol("expected CRLF after a bulk string"));
            }
            p.args.push(buf.split_to(len).freeze());
            buf.advance(2);
            p.bytes += len + 2;
            p.bulk = None;
            p.remaining -= 1;
        }
        let Some(done) = self.partial.take() else {
            return Ok(Step::NeedMore);
        };
        Ok(Step::Done(Command {
            args: done.args,
            bytes: done.bytes,
            wire: None,
        }))
    }

    fn inline(&mut self, buf: &mut BytesMut) -> Result<Step, RespError> {
        let Some(n) = self.lines.lf(buf) else {
            partial_line(buf.len(), 0, self.max_request, "too big inline request")?;
            return Ok(Step::NeedMore);
        };
        // Checked on whole lines too, so a line is refused however it was split up.
        if n > PROTO_INLINE_MAX_SIZE {
            return Err(RespError::protocol("too big inline request"));
        }
        if n + 1 > self.max_request {
            return Err(self.too_large(n + 1));
        }
        let line = buf.split_to(n + 1).freeze();
        let text_end = if n > 0 && line[n - 1] == b'\r' {
            n - 1
        } else {
            n
        };
        let args = split_args(&line.slice(..text_end))
            .map_err(|_| RespError::protocol("unbalanced quotes in request"))?;
        if args.is_empty() {
            return Ok(Step::Skipped);
        }
        Ok(Step::Done(Command {
            args,
            bytes: n + 1,
            wire: None,
        }))
    }

    fn too_large(&self, len: usize) -> RespError {
        RespError::TooLarge {
            len,
            max: self.max_request,
        }
    }
}

/// Limits on a line whose end has not arrived: `pending` bytes of it are buffered after
/// `taken` bytes of its command.
fn partial_line(pending: usize, taken: usize, max: usize, what: &str) -> Result<(), RespError> {
    if pending > PROTO_INLINE_MAX_SIZE {
        return Err(RespError::protocol(what));
    }
    if taken + pending > max {
        return Err(RespError::TooLarge {
            len: taken + pending,
            max,
        });
    }
    Ok(())
}
