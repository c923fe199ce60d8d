//! Redis Cluster key slots: the hash tag rule and CRC16 (XMODEM) modulo 16384, as in the
//! Redis Cluster specification, so keys land where a real cluster expects them.

/// Number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The part of `key` that is hashed: the bytes between the first `{` and the first `}`
/// after it, when there is at least one byte between them; otherwise the whole key.
///
/// This is what lets `{user1000}.following` and `{user1000}.followers` share a slot.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        // `{}` hashes the whole key: an empty tag would send every such key to one slot.
        Some(0) | None => key,
        Some(close) => &rest[..close],
    }
}

/// The cluster slot of `key` (0..16384).
pub fn slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOTS - 1)
}

/// CRC16-CCITT in the XMODEM variant (polynomial 0x1021, initial value 0, no reflection).
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// One entry per byte value, computed at compile time.
static CRC16_TABLE: [u16; 256] = crc16_table();

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_cluster_spec_vector() {
        // The Redis Cluster specification's reference output for "123456789".
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn known_slots() {
        // Values as `CLUSTER KEYSLOT` reports them.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"hello"), 866);
        assert_eq!(slot(b"123456789"), 0x31C3 & 0x3FFF);
    }

    #[test]
    fn hash_tags_follow_the_cluster_rules() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        // Only the first `{` counts, and the first `}` after it.
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        // An empty tag or an unclosed one: the whole key is hashed.
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
        assert_eq!(hash_tag(b"}foo{"), b"}foo{");
        assert_eq!(hash_tag(b"{}"), b"{}");
    }

    #[test]
    fn every_slot_is_in_range() {
        for i in 0..10_000u32 {
            assert!(slot(format!("key:{i}").as_bytes()) < SLOTS);
        }
    }
}
