//! Request text echoed back or checked at the edge: control characters stripped or refused, and
//! quoted values taken out of serde's messages (a value sent in the wrong field may be a secret).
//! Every API uses these, so a problem `detail` never carries a line break, an escape sequence or
//! a credential the caller sent.

/// `text` without control characters, at most `max_chars` characters: safe to echo in a problem
/// detail or a log line.
pub fn printable(text: &str, max_chars: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max_chars).collect()
}

/// Whether `text` holds a control character other than those in `allowed` (e.g. `&['\n']` for
/// free text that may span lines).
pub fn has_control(text: &str, allowed: &[char]) -> bool {
    text.chars().any(|c| c.is_control() && !allowed.contains(&c))
}

/// serde's messages quote offending values (which could be a secret sent in the wrong field):
/// field names (in backticks) stay, each quoted value becomes `"…"`.
pub fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            if !inside {
                out.push_str("\"…\"");
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_redacted_but_field_names_stay() {
        let e = serde_json::from_str::<bool>("\"hunter2\"").unwrap_err();
        let text = redact_quoted(&e.to_string());
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("\"…\""), "{text}");
        assert_eq!(
            redact_quoted("unknown field `x`, expected `a`"),
            "unknown field `x`, expected `a`"
        );
    }

    #[test]
    fn an_unclosed_quote_hides_everything_after_it() {
        assert_eq!(redact_quoted("bad value \"s3cret"), "bad value \"…\"");
    }

    #[test]
    fn printable_text_drops_control_characters_and_is_bounded() {
        assert_eq!(printable("/a\r\nb\u{1b}[31m", 200), "/ab[31m");
        assert_eq!(printable(&"x".repeat(300), 200).chars().count(), 200);
        assert_eq!(printable("ééé", 2), "éé");
    }

    #[test]
    fn control_characters_are_found_unless_allowed() {
        assert!(has_control("a\tb", &[]));
        assert!(!has_control("line one\nline two", &['\n']));
        assert!(has_control("line\r\n", &['\n']));
        assert!(!has_control("plain text", &[]));
    }
}
