//! Digests as text: the lowercase hex every record and log line of kuduhook writes them in.

/// `bytes` as lowercase hex, two digits each.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// `2 * N` hexadecimal digits as the `N` bytes they spell (`None` for another length or a
/// character that is no digit). Records of 100,000 files are read at every sync: a table, not
/// a branch per digit.
pub fn unhex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    const VALUE: [u8; 256] = {
        let mut table = [0xffu8; 256];
        let mut i = 0;
        while i < 10 {
            table[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            table[b'a' as usize + i] = 10 + i as u8;
            table[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        table
    };
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut bad = 0u8;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (high, low) = (VALUE[usize::from(pair[0])], VALUE[usize::from(pair[1])]);
        bad |= high | low;
        *byte = high << 4 | (low & 15);
    }
    (bad & 0xf0 == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_byte_is_two_lowercase_digits() {
        assert_eq!(super::hex(&[0, 9, 0xab, 0xff]), "0009abff");
    }

    #[test]
    fn digits_read_back_and_anything_else_is_refused() {
        assert_eq!(super::unhex::<4>(b"0009abFF"), Some([0, 9, 0xab, 0xff]));
        for bad in [&b"0009abf"[..], b"0009abff00", b"0009abfg", b"0009ab f"] {
            assert_eq!(super::unhex::<4>(bad), None, "{bad:?}");
        }
    }
}
