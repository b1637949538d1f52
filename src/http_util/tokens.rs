//! The elements of a comma-separated list field (RFC 9110 §5.6.1, the `#rule`):
//! split at each `,`, each element trimmed of the white space around it, empty
//! elements skipped (a recipient "MUST accept empty list elements" and they do
//! not count as elements). Field lines of one name are one list (RFC 9110 §5.3):
//! callers flat-map the lines through [`tokens`].

/// The non-empty elements of one list field line, in order (and, reversed, from
/// the last). Trimmed of ASCII white space: within a field value that is OWS, as
/// a value holds no other control character (RFC 9110 §5.5).
pub(crate) fn tokens(value: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|element| !element.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(value: &str) -> Vec<&str> {
        tokens(value.as_bytes())
            .map(|t| std::str::from_utf8(t).unwrap())
            .collect()
    }

    #[test]
    fn elements_are_trimmed_and_empty_ones_skipped() {
        assert_eq!(all("gzip, br"), ["gzip", "br"]);
        assert_eq!(all(" a ,\tb\t, c"), ["a", "b", "c"]);
        // RFC 9110 §5.6.1's examples of valid lists with empty elements.
        assert_eq!(all("foo,bar"), ["foo", "bar"]);
        assert_eq!(all("foo ,bar,"), ["foo", "bar"]);
        assert_eq!(all("foo , ,bar,charlie"), ["foo", "bar", "charlie"]);
        assert_eq!(all(", ,"), Vec::<&str>::new());
        assert_eq!(all(""), Vec::<&str>::new());
    }

    #[test]
    fn parameters_and_inner_space_are_kept() {
        assert_eq!(all("gzip;q=0.5 , br ; q=1"), ["gzip;q=0.5", "br ; q=1"]);
        assert_eq!(all("no-cache=\"a b\""), ["no-cache=\"a b\""]);
    }

    #[test]
    fn a_list_reads_from_its_last_element_too() {
        let last_first: Vec<&[u8]> = tokens(b"1.1.1.1, , 2.2.2.2 ,").rev().collect();
        assert_eq!(last_first, [&b"2.2.2.2"[..], b"1.1.1.1"]);
    }
}
