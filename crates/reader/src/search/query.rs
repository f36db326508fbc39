//! Full-text queries: words and `"quoted phrases"`, every one of which must occur in a
//! section. Each is tokenized like the text ([`super::tokenizer`], query mode): a word
//! that yields several tokens (`keeper's`, a CJK word's bigrams) is matched as a phrase.
//! Pure and total; there is no syntax to get wrong (a stray quote ends at the end).

use super::tokenizer::{tokenize, Mode};

/// Longest query looked at, in characters (the rest is ignored).
pub const MAX_QUERY_CHARS: usize = 256;
/// Most words and phrases in a query (the rest are ignored).
pub const MAX_TERMS: usize = 16;

/// The terms of `q`: for each word or phrase, its tokens with their relative positions.
pub fn parse(q: &str) -> Vec<Vec<(usize, String)>> {
    let q: String = q.chars().take(MAX_QUERY_CHARS).collect();
    let mut parts: Vec<&str> = Vec::new();
    for (i, chunk) in q.split('"').enumerate() {
        if i % 2 == 1 {
            parts.push(chunk);
        } else {
            parts.extend(chunk.split_whitespace());
        }
    }
    parts
        .into_iter()
        .filter_map(|p| {
            let toks = tokenize(p, Mode::Query);
            let first = toks.first()?.position;
            Some(
                toks.into_iter()
                    .map(|t| (t.position - first, t.text))
                    .collect::<Vec<_>>(),
            )
        })
        .take(MAX_TERMS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(q: &str) -> Vec<Vec<&'static str>> {
        parse(q)
            .into_iter()
            .map(|t| {
                t.into_iter()
                    .map(|(_, s)| &*Box::leak(s.into_boxed_str()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn words_phrases_and_cjk() {
        assert_eq!(
            words("Lighthouse  keeper"),
            [vec!["lighthouse"], vec!["keeper"]]
        );
        assert_eq!(
            words("\"the Keeper\" sea"),
            [vec!["the", "keeper"], vec!["sea"]]
        );
        assert_eq!(words("一座庙"), [vec!["一座", "座庙"]]);
        assert_eq!(
            parse("keeper's")[0],
            [(0, "keeper".into()), (1, "s".into())]
        );
    }

    #[test]
    fn anything_parses() {
        assert!(parse("").is_empty());
        assert!(parse("\"\"  \" ,;").is_empty());
        assert_eq!(words("\"open phrase"), [vec!["open", "phrase"]]);
        let many = "w ".repeat(100);
        assert_eq!(parse(&many).len(), MAX_TERMS);
        let long = "x".repeat(10_000);
        assert!(parse(&long).is_empty(), "one overlong word is no token");
    }
}
