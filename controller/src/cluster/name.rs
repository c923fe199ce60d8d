//! Names of the gateway address Services: `<name>-<namespace>` where that is a valid
//! Service name, else a shortened form with a hash of the owner.
//!
//! `<name>-<namespace>` alone is ambiguous (`a-b` in `c` and `a` in `b-c` both give
//! `a-b-c`), and a Service of the chart may already use a name; the caller
//! ([`super::address`]) then asks for the hashed form, with a salt if even that is taken.

use crate::{addressing::fnv1a, store::ObjectKey};

/// Longest Service name: a DNS-1035 label.
pub const MAX_NAME_LEN: usize = 63;
/// Hex digits of the hash in a shortened name: 32 bits make a clash between two owners'
/// shortened names improbable, and a clash is still resolved by salting.
const HASH_DIGITS: usize = 8;

/// The name an owner's address Service asks for first: `<name>-<namespace>` when that is
/// a valid Service name, else [`hashed_name`] with salt 0.
pub fn plain_name(owner: &ObjectKey) -> String {
    let plain = format!("{}-{}", owner.name, owner.namespace);
    if is_dns1035_label(&plain) {
        plain
    } else {
        hashed_name(owner, 0)
    }
}

/// `<prefix>-<hash>`: as much of `<name>-<namespace>` as fits (letters, digits and dashes
/// only, starting with a letter) and 8 hex digits of a hash of the owner and `salt`.
/// Always a valid Service name; different salts give different names.
pub fn hashed_name(owner: &ObjectKey, salt: u32) -> String {
    let seed = if salt == 0 {
        format!("{}/{}", owner.namespace, owner.name)
    } else {
        format!("{}/{}#{salt}", owner.namespace, owner.name)
    };
    let hash = fnv1a(seed.as_bytes());
    // Fold the 64-bit hash so every input bit counts in the 32 bits kept.
    let short = (hash ^ (hash >> 32)) as u32;
    let mut prefix: String = format!("{}-{}", owner.name, owner.namespace)
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if !prefix.starts_with(|c: char| c.is_ascii_lowercase()) {
        prefix.insert(0, 's');
    }
    prefix.truncate(MAX_NAME_LEN - HASH_DIGITS - 1);
    let prefix = prefix.trim_end_matches('-');
    format!("{prefix}-{short:0width$x}", width = HASH_DIGITS)
}

/// True for a DNS-1035 label: lower-case letters, digits and `-`, starting with a letter,
/// ending with a letter or digit, at most 63 characters (the rule for Service names).
pub fn is_dns1035_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn short_names_are_name_dash_namespace() {
        assert_eq!(
            plain_name(&ObjectKey::new("default", "reviews")),
            "reviews-default"
        );
        let ns = "n".repeat(30);
        let name = "a".repeat(32);
        // 32 + 1 + 30 = 63: still fits.
        assert_eq!(
            plain_name(&ObjectKey::new(&ns, &name)),
            format!("{name}-{ns}")
        );
    }

    #[test]
    fn long_or_invalid_names_are_shortened_with_a_hash() {
        let owner = ObjectKey::new("n".repeat(40), "a".repeat(40));
        let name = plain_name(&owner);
        assert_eq!(name.len(), MAX_NAME_LEN);
        assert!(is_dns1035_label(&name), "{name}");
        assert!(name.starts_with(&"a".repeat(40)));
        assert_eq!(name, plain_name(&owner), "deterministic");
        // A name that would not be a DNS-1035 label (from a manifests file, say).
        let odd = plain_name(&ObjectKey::new("ns", "9lives"));
        assert!(
            odd.starts_with("s9lives-ns-") && is_dns1035_label(&odd),
            "{odd}"
        );
        // Salts give different names.
        let salted: BTreeSet<String> = (0..50).map(|s| hashed_name(&owner, s)).collect();
        assert_eq!(salted.len(), 50);
    }

    #[test]
    fn no_clash_among_many_long_names() {
        // Owners that share their first 54 characters differ only in the hash.
        let long = "x".repeat(60);
        let names: BTreeSet<String> = (0..10_000)
            .map(|i| plain_name(&ObjectKey::new(format!("ns-{i}"), &long)))
            .collect();
        assert_eq!(names.len(), 10_000);
        assert!(names.iter().all(|n| is_dns1035_label(n)));
    }

    #[test]
    fn dns1035_rules() {
        for good in ["a", "a-b", "a1", &"a".repeat(63)] {
            assert!(is_dns1035_label(good), "{good}");
        }
        for bad in ["", "1a", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_dns1035_label(bad), "{bad}");
        }
    }
}
