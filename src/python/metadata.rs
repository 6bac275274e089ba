//! Core metadata: the header fields of a distribution's `METADATA` (a wheel, an installed
//! `*.dist-info`) or `PKG-INFO` (an sdist), read as `importlib.metadata` and pip read them.
//!
//! The [core metadata spec] stores fields as email headers, parsed by Python's `email` package:
//! a field starts a line with its name and a colon; a line that starts with a space or a tab
//! continues the field before it; the headers end at the first empty line (or at a line that is
//! neither, which Python reads as the start of the body). Continuation lines can be long and
//! blank-looking: pandas' and scikit-learn's `License:` runs over 1,270 of them, some holding
//! only spaces, and older wheels carry the whole `Description:` as one. Such a line is still
//! part of its field, never the end of the headers: reading it as the end loses every
//! `Requires-Dist` after it. The body (the long description) is not read.
//!
//! No crate is used: `mailparse` decodes RFC 2047 words and charsets, which core metadata does
//! not use, and the grammar above is the few lines below.
//!
//! [core metadata spec]: https://packaging.python.org/en/latest/specifications/core-metadata/

/// The header fields of one metadata file, in order, each value unfolded (a continuation
/// line's own leading whitespace kept, its line break dropped, as RFC 5322 unfolds).
#[derive(Debug, Default)]
pub struct Metadata {
    fields: Vec<(String, String)>,
}

impl Metadata {
    /// Reads the header fields of `text` (a `METADATA` or `PKG-INFO` file's content).
    pub fn parse(text: &str) -> Metadata {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                break; // the empty line between the headers and the body
            }
            if line.starts_with([' ', '\t']) {
                // A continuation; one before any field is a defect Python skips too.
                if let Some((_, value)) = fields.last_mut() {
                    value.push_str(line);
                }
                continue;
            }
            match line.split_once(':') {
                Some((name, value)) if is_field_name(name) => {
                    fields.push((
                        name.to_string(),
                        value.trim_start_matches([' ', '\t']).into(),
                    ));
                }
                _ => break, // neither a field nor its continuation: the body begins here
            }
        }
        Metadata { fields }
    }

    /// Reads a metadata file's bytes: UTF-8 as the spec asks, anything else replaced rather
    /// than refused (a stray byte in a long description must not hide the dependencies).
    pub fn parse_bytes(bytes: &[u8]) -> Metadata {
        Metadata::parse(&String::from_utf8_lossy(bytes))
    }

    /// The first value of `field` (names compare without regard to case), trimmed.
    pub fn get<'a>(&'a self, field: &str) -> Option<&'a str> {
        self.get_all(field).next()
    }

    /// Every value of `field`, in order, trimmed.
    pub fn get_all<'a, 'f>(
        &'a self,
        field: &'f str,
    ) -> impl Iterator<Item = &'a str> + use<'a, 'f> {
        self.fields
            .iter()
            .filter(move |(name, _)| name.eq_ignore_ascii_case(field))
            .map(|(_, value)| value.trim())
    }
}

/// A header field's name as Python's `email` parser accepts it: printable ASCII, no space, no
/// colon.
fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A METADATA shaped like pandas 2.2.3's: a `License:` whose continuation lines include
    /// lines of spaces alone and a tab-indented one, then the dependencies, then the body.
    const LONG_LICENSE: &str = concat!(
        "Metadata-Version: 2.1\r\n",
        "Name: pandas\n",
        "Version: 2.2.3\n",
        "License: BSD 3-Clause License\n",
        "        \n",
        "         Copyright (c) 2008-2011, AQR Capital Management, LLC\n",
        "         All rights reserved.\n",
        " \n",
        "\t Redistribution and use in source and binary forms ...\n",
        "        \n",
        "Classifier: Programming Language :: Python\n",
        "Requires-Python: >=3.9\n",
        "Requires-Dist: numpy>=1.23.2; python_version == \"3.11\"\n",
        "Requires-Dist: python-dateutil>=2.8.2\n",
        "requires-dist: pytz>=2020.1\n",
        "Requires-Dist: tzdata>=2022.7\n",
        "Requires-Dist: hypothesis>=6.46.1;\n",
        "  extra == \"test\"\n",
        "Provides-Extra: test\n",
        "Description-Content-Type: text/markdown\n",
        "\n",
        "Requires-Dist: not-a-dependency\n",
        "# pandas\n",
    );

    #[test]
    fn continuation_lines_of_spaces_alone_do_not_end_the_headers() {
        let metadata = Metadata::parse(LONG_LICENSE);
        assert_eq!(metadata.get("name"), Some("pandas"));
        assert_eq!(metadata.get("Version"), Some("2.2.3"));
        let requires: Vec<&str> = metadata.get_all("Requires-Dist").collect();
        assert_eq!(
            requires,
            [
                "numpy>=1.23.2; python_version == \"3.11\"",
                "python-dateutil>=2.8.2",
                "pytz>=2020.1",
                "tzdata>=2022.7",
                "hypothesis>=6.46.1;  extra == \"test\"",
            ],
            "every Requires-Dist after the long License, a folded one unfolded, none from the body"
        );
        let license = metadata.get("License").unwrap();
        assert!(license.starts_with("BSD 3-Clause License"), "{license}");
        assert!(license.contains("All rights reserved."), "{license}");
        assert_eq!(metadata.get("Metadata-Version"), Some("2.1"), "CRLF read");
    }

    #[test]
    fn the_headers_end_at_the_empty_line_or_at_a_line_that_is_no_field() {
        let metadata = Metadata::parse("Name: a\nVersion: 1\nthis is the body\nRequires-Dist: b\n");
        assert_eq!(metadata.get_all("Requires-Dist").count(), 0);
        assert_eq!(metadata.get("Version"), Some("1"));
        let metadata = Metadata::parse(" stray continuation\nName: a\n\nName: b\n");
        assert_eq!(metadata.get_all("name").collect::<Vec<_>>(), ["a"]);
        assert_eq!(Metadata::parse("").get("Name"), None);
    }

    #[test]
    fn bytes_that_are_not_utf8_do_not_hide_the_fields() {
        let metadata = Metadata::parse_bytes(b"Name: a\nSummary: caf\xe9\nRequires-Dist: b\n");
        assert_eq!(metadata.get("Requires-Dist"), Some("b"));
    }
}
