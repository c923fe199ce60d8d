//! A Hessian2 reader that walks values without building them: strings and scalars are
//! read, everything else is skipped. Every length comes from the input, so nothing is
//! allocated up front; every loop consumes input or stops.

/// Deepest nesting of lists, maps and objects followed; deeper input is refused rather
/// than risking the stack.
const MAX_DEPTH: usize = 64;

/// Why a Hessian2 value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HessianError {
    /// The value runs past the end of the body.
    #[error("hessian2 value truncated at byte {0}")]
    Truncated(usize),
    /// A byte that cannot start or continue a value here.
    #[error("invalid hessian2 at byte {at}: {what}")]
    Invalid {
        /// Offset in the body.
        at: usize,
        /// What was expected.
        what: &'static str,
    },
}

/// A cursor over one Hessian2 body. Class definitions are remembered because an object's
/// field count lives in its definition; Dubbo starts a fresh output per message, so they
/// do not outlive the body.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Field count of each class definition, by definition number.
    classes: Vec<usize>,
    depth: usize,
}

/// Whether `b` starts a string (compact, medium, or chunked).
pub(crate) fn is_string_start(b: u8) -> bool {
    matches!(b, 0x00..=0x1f | 0x30..=0x33 | b'R' | b'S')
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            classes: Vec::new(),
            depth: 0,
        }
    }

    /// The offset of the next unread byte.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Moves to `pos` (clamped to the end), for a caller that measured a value already.
    pub(crate) fn skip_to(&mut self, pos: usize) {
        self.pos = pos.min(self.buf.len());
    }

    /// Reads a map's tag and, for a typed map, its type: what comes before the entries.
    pub(crate) fn skip_map_head(&mut self) -> Result<(), HessianError> {
        match self.byte()? {
            b'H' => Ok(()),
            b'M' => self.skip_type(),
            _ => {
                self.pos -= 1;
                self.invalid("a map")
            }
        }
    }

    /// Whether every byte has been read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The next byte, not consumed.
    pub(crate) fn peek(&self) -> Result<u8, HessianError> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(HessianError::Truncated(self.pos))
    }

    fn byte(&mut self) -> Result<u8, HessianError> {
        let b = self.peek()?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], HessianError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(HessianError::Truncated(self.pos))?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(HessianError::Truncated(self.pos))?;
        self.pos = end;
        Ok(bytes)
    }

    fn be(&mut self, n: usize) -> Result<u64, HessianError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn invalid<T>(&self, what: &'static str) -> Result<T, HessianError> {
        Err(HessianError::Invalid { at: self.pos, what })
    }

    /// Reads a string; `None` for null.
    pub(crate) fn read_string(&mut self) -> Result<Option<String>, HessianError> {
        if self.peek()? == b'N' {
            self.pos += 1;
            return Ok(None);
        }
        let mut units = Vec::new();
        self.string_chunks(Some(&mut units))?;
        Ok(Some(String::from_utf16_lossy(&units)))
    }

    /// Walks a (possibly chunked) string, collecting its UTF-16 units into `sink`.
    fn string_chunks(&mut self, mut sink: Option<&mut Vec<u16>>) -> Result<(), HessianError> {
        loop {
            let tag = self.byte()?;
            let (len, last) = match tag {
                0x00..=0x1f => (usize::from(tag), true),
                0x30..=0x33 => (
                    (usize::from(tag - 0x30) << 8) | usize::from(self.byte()?),
                    true,
                ),
                b'R' | b'S' => (self.be(2)? as usize, tag == b'S'),
                _ => return self.invalid("a string"),
            };
            self.chars(len, sink.as_deref_mut())?;
            if last {
                return Ok(());
            }
        }
    }

    /// Reads `count` characters. The count is in UTF-16 units (Java's chars): a
    /// supplementary character written as one 4-byte UTF-8 sequence counts two, and so
    /// does a pair of 3-byte surrogate encodings, which is how Java writes one.
    fn chars(&mut self, count: usize, mut sink: Option<&mut Vec<u16>>) -> Result<(), HessianError> {
        let mut left = count;
        while left > 0 {
            let lead = self.byte()?;
            let (extra, init) = match lead {
                0x00..=0x7f => (0, u32::from(lead)),
                0xc0..=0xdf => (1, u32::from(lead & 0x1f)),
                0xe0..=0xef => (2, u32::from(lead & 0x0f)),
                0xf0..=0xf7 => (3, u32::from(lead & 0x07)),
                _ => return self.invalid("a UTF-8 lead byte"),
            };
            let mut cp = init;
            for b in self.take(extra)? {
                if b & 0xc0 != 0x80 {
                    return self.invalid("a UTF-8 continuation byte");
                }
                cp = (cp << 6) | u32::from(b & 0x3f);
            }
            let mut units = [0u16; 2];
            let n = match char::from_u32(cp) {
                Some(c) => c.encode_utf16(&mut units).len(),
                // A lone surrogate (half of a Java-encoded pair) is one unit as it is.
                None if cp <= 0xffff => {
                    units[0] = cp as u16;
                    1
                }
                None => return self.invalid("a Unicode scalar value"),
            };
            if n > left {
                return self.invalid("a character within the string's length");
            }
            left -= n;
            if let Some(sink) = sink.as_deref_mut() {
                sink.extend_from_slice(&units[..n]);
            }
        }
        Ok(())
    }

    /// Reads an int in any of its forms.
    pub(crate) fn read_int(&mut self) -> Result<i32, HessianError> {
        let tag = self.byte()?;
        self.int_after(tag)
    }

    fn int_after(&mut self, tag: u8) -> Result<i32, HessianError> {
        Ok(match tag {
            0x80..=0xbf => i32::from(tag) - 0x90,
            0xc0..=0xcf => ((i32::from(tag) - 0xc8) << 8) | i32::from(self.byte()?),
            0xd0..=0xd7 => ((i32::from(tag) - 0xd4) << 16) | self.be(2)? as i32,
            b'I' => self.be(4)? as u32 as i32,
            _ => return self.invalid("an int"),
        })
    }

    fn long_after(&mut self, tag: u8) -> Result<i64, HessianError> {
        Ok(match tag {
            0xd8..=0xef => i64::from(tag) - 0xe0,
            0xf0..=0xff => ((i64::from(tag) - 0xf8) << 8) | i64::from(self.byte()?),
            0x38..=0x3f => ((i64::from(tag) - 0x3c) << 16) | self.be(2)? as i64,
            b'Y' => i64::from(self.be(4)? as u32 as i32),
            b'L' => self.be(8)? as i64,
            _ => return self.invalid("a long"),
        })
    }

    /// Reads a value as text when it is a string, bool, int or long (attachments are
    /// strings in practice; the others render as Java would print them). Anything else
    /// is skipped and gives `None`, as does null.
    pub(crate) fn read_text(&mut self) -> Result<Option<String>, HessianError> {
        let tag = self.peek()?;
        if is_string_start(tag) {
            return self.read_string();
        }
        let text = match tag {
            b'T' => "true".to_owned(),
            b'F' => "false".to_owned(),
            0x80..=0xd7 | b'I' => {
                self.pos += 1;
                self.int_after(tag)?.to_string()
            }
            0xd8..=0xff | 0x38..=0x3f | b'Y' | b'L' => {
                self.pos += 1;
                self.long_after(tag)?.to_string()
            }
            _ => {
                self.skip_value()?;
                return Ok(None);
            }
        };
        if matches!(tag, b'T' | b'F') {
            self.pos += 1;
        }
        Ok(Some(text))
    }

    /// Skips a list or map type: a type name, or an int naming an earlier one.
    fn skip_type(&mut self) -> Result<(), HessianError> {
        if is_string_start(self.peek()?) {
            self.string_chunks(None)
        } else {
            self.read_int().map(drop)
        }
    }

    /// Reads a length or count, refusing negatives.
    fn read_len(&mut self) -> Result<usize, HessianError> {
        let n = self.read_int()?;
        usize::try_from(n).or_else(|_| self.invalid("a non-negative length"))
    }

    /// Skips `n` values; each consumes at least a byte, so a lying count ends in
    /// `Truncated` rather than a long loop.
    fn skip_values(&mut self, n: usize) -> Result<(), HessianError> {
        for _ in 0..n {
            self.skip_value()?;
        }
        Ok(())
    }

    /// Skips values up to and including the `Z` that ends a list or map.
    fn skip_until_end(&mut self, pairs: bool) -> Result<(), HessianError> {
        while self.peek()? != b'Z' {
            self.skip_value()?;
            if pairs {
                self.skip_value()?;
            }
        }
        self.pos += 1;
        Ok(())
    }

    /// Skips one value of any type.
    pub(crate) fn skip_value(&mut self) -> Result<(), HessianError> {
        if self.depth >= MAX_DEPTH {
            return self.invalid("nesting within the depth limit");
        }
        self.depth += 1;
        let result = self.skip_inner();
        self.depth -= 1;
        result
    }

    fn skip_inner(&mut self) -> Result<(), HessianError> {
        let tag = self.peek()?;
        if is_string_start(tag) {
            return self.string_chunks(None);
        }
        self.pos += 1;
        match tag {
            b'N' | b'T' | b'F' | 0x5b | 0x5c => Ok(()),
            0x80..=0xd7 | b'I' => self.int_after(tag).map(drop),
            0xd8..=0xff | 0x38..=0x3f | b'Y' | b'L' => self.long_after(tag).map(drop),
            0x5d => self.take(1).map(drop),
            0x5e => self.take(2).map(drop),
            0x5f | b'K' => self.take(4).map(drop),
            b'D' | b'J' => self.take(8).map(drop),
            0x20..=0x2f => self.take(usize::from(tag - 0x20)).map(drop),
            0x34..=0x37 => {
                let len = (usize::from(tag - 0x34) << 8) | usize::from(self.byte()?);
                self.take(len).map(drop)
            }
            b'A' | b'B' => self.skip_binary(tag),
            b'Q' => self.read_int().map(drop),
            b'C' => {
                self.string_chunks(None)?;
                let fields = self.read_len()?;
                for _ in 0..fields {
                    self.string_chunks(None)?;
                }
                self.classes.push(fields);
                // A definition is not a value: it prefixes the object that uses it.
                self.skip_value()
            }
            b'O' => {
                let class = self.read_len()?;
                self.skip_object(class)
            }
            0x60..=0x6f => self.skip_object(usize::from(tag - 0x60)),
            b'H' => self.skip_until_end(true),
            b'M' => {
                self.skip_type()?;
                self.skip_until_end(true)
            }
            b'U' => {
                self.skip_type()?;
                self.skip_until_end(false)
            }
            b'W' => self.skip_until_end(false),
            b'V' => {
                self.skip_type()?;
                let n = self.read_len()?;
                self.skip_values(n)
            }
            b'X' => {
                let n = self.read_len()?;
                self.skip_values(n)
            }
            0x70..=0x77 => {
                self.skip_type()?;
                self.skip_values(usize::from(tag - 0x70))
            }
            0x78..=0x7f => self.skip_values(usize::from(tag - 0x78)),
            _ => {
                self.pos -= 1;
                self.invalid("a value")
            }
        }
    }

    fn skip_binary(&mut self, mut tag: u8) -> Result<(), HessianError> {
        loop {
            let len = self.be(2)? as usize;
            self.take(len)?;
            if tag == b'B' {
                return Ok(());
            }
            // A non-final chunk is followed by another chunk in any binary form.
            tag = self.byte()?;
            match tag {
                b'A' | b'B' => {}
                0x20..=0x2f => return self.take(usize::from(tag - 0x20)).map(drop),
                0x34..=0x37 => {
                    let len = (usize::from(tag - 0x34) << 8) | usize::from(self.byte()?);
                    return self.take(len).map(drop);
                }
                _ => return self.invalid("a binary chunk"),
            }
        }
    }

    fn skip_object(&mut self, class: usize) -> Result<(), HessianError> {
        match self.classes.get(class).copied() {
            Some(fields) => self.skip_values(fields),
            None => self.invalid("a defined class"),
        }
    }
}
