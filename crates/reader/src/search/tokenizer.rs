//! The full-text index's tokenizer: CJK text (Han, kana, Hangul), which has no spaces
//! between words, becomes overlapping character bigrams (`山里有庙` → `山里`, `里有`,
//! `有庙`), every other letter or digit run one lowercased word. When indexing, each CJK
//! character is also emitted as a unigram at its bigram's position, so a one-character
//! query finds it; a query of two or more CJK characters is matched by its bigrams as a
//! phrase. Pure and total: any text gives tokens with valid byte offsets.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The name the tokenizer is registered under in the index.
pub const NAME: &str = "sockit_cjk";

/// Longest word kept, in characters (longer runs — base64, hashes — are skipped).
pub const MAX_WORD_CHARS: usize = 64;

/// Whether `c` is written without spaces between words (CJK ideographs, kana, Hangul,
/// and their compatibility and extension blocks).
pub fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x3040..=0x30FF     // Hiragana, Katakana
        | 0x31F0..=0x31FF   // Katakana phonetic extensions
        | 0x3400..=0x4DBF   // CJK extension A
        | 0x4E00..=0x9FFF   // CJK unified ideographs
        | 0xAC00..=0xD7AF   // Hangul syllables
        | 0x1100..=0x11FF   // Hangul jamo
        | 0x3130..=0x318F   // Hangul compatibility jamo
        | 0xF900..=0xFAFF   // CJK compatibility ideographs
        | 0xFF66..=0xFF9D   // half-width Katakana
        | 0x20000..=0x2FA1F // extensions B.., compatibility supplement
    )
}

/// What the tokens are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Indexing: bigrams and unigrams for CJK.
    Index,
    /// A query: bigrams only for two or more CJK characters, the unigram for one.
    Query,
}

/// Splits `text` into tokens (see the module documentation).
pub fn tokenize(text: &str, mode: Mode) -> Vec<Token> {
    let mut out = Vec::new();
    let mut position = 0usize;
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if is_cjk(c) {
            let mut run: Vec<(usize, char)> = Vec::new();
            while let Some(&(i, c)) = chars.peek() {
                if !is_cjk(c) {
                    break;
                }
                run.push((i, c));
                chars.next();
            }
            let end_of = |k: usize| run[k].0 + run[k].1.len_utf8();
            if run.len() == 1 || mode == Mode::Index {
                for k in 0..run.len() {
                    push(&mut out, text, run[k].0, end_of(k), position + k, None);
                    if k + 1 < run.len() {
                        push(&mut out, text, run[k].0, end_of(k + 1), position + k, None);
                    }
                }
            } else {
                for (k, &(from, _)) in run.iter().enumerate().take(run.len() - 1) {
                    push(&mut out, text, from, end_of(k + 1), position + k, None);
                }
            }
            position += run.len();
        } else if c.is_alphanumeric() {
            let mut end = start;
            let mut count = 0usize;
            while let Some(&(i, c)) = chars.peek() {
                if !c.is_alphanumeric() || is_cjk(c) {
                    break;
                }
                end = i + c.len_utf8();
                count += 1;
                chars.next();
            }
            if count <= MAX_WORD_CHARS {
                let lower = text[start..end].to_lowercase();
                push(&mut out, text, start, end, position, Some(lower));
                position += 1;
            }
        } else {
            chars.next();
        }
    }
    out
}

fn push(
    out: &mut Vec<Token>,
    text: &str,
    from: usize,
    to: usize,
    position: usize,
    lower: Option<String>,
) {
    out.push(Token {
        offset_from: from,
        offset_to: to,
        position,
        text: lower.unwrap_or_else(|| text[from..to].to_owned()),
        position_length: 1,
    });
}

/// The tokenizer as tantivy uses it (indexing mode; queries are built with
/// [`tokenize`] in [`Mode::Query`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CjkTokenizer;

/// The tokens of one text, handed out one by one.
#[derive(Debug)]
pub struct Tokens {
    tokens: std::vec::IntoIter<Token>,
    current: Token,
}

impl Tokenizer for CjkTokenizer {
    type TokenStream<'a> = Tokens;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Tokens {
        Tokens {
            tokens: tokenize(text, Mode::Index).into_iter(),
            current: Token::default(),
        }
    }
}

impl TokenStream for Tokens {
    fn advance(&mut self) -> bool {
        match self.tokens.next() {
            Some(t) => {
                self.current = t;
                true
            }
            None => false,
        }
    }

    fn token(&self) -> &Token {
        &self.current
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str, mode: Mode) -> Vec<(String, usize)> {
        tokenize(text, mode)
            .into_iter()
            .map(|t| (t.text, t.position))
            .collect()
    }

    fn owned(v: &[(&str, usize)]) -> Vec<(String, usize)> {
        v.iter().map(|(s, p)| ((*s).to_owned(), *p)).collect()
    }

    #[test]
    fn words_are_lowercased_and_split_on_punctuation() {
        assert_eq!(
            texts("The Keeper's LIGHT-house, 1984!", Mode::Index),
            owned(&[
                ("the", 0),
                ("keeper", 1),
                ("s", 2),
                ("light", 3),
                ("house", 4),
                ("1984", 5)
            ])
        );
        assert_eq!(
            texts("Ärger über STRAẞE", Mode::Query),
            owned(&[("ärger", 0), ("über", 1), ("straße", 2)])
        );
    }

    #[test]
    fn cjk_is_indexed_as_unigrams_and_bigrams() {
        assert_eq!(
            texts("山里有庙", Mode::Index),
            owned(&[
                ("山", 0),
                ("山里", 0),
                ("里", 1),
                ("里有", 1),
                ("有", 2),
                ("有庙", 2),
                ("庙", 3)
            ])
        );
    }

    #[test]
    fn cjk_queries_are_bigrams_or_one_unigram() {
        assert_eq!(
            texts("一座庙", Mode::Query),
            owned(&[("一座", 0), ("座庙", 1)])
        );
        assert_eq!(texts("庙", Mode::Query), owned(&[("庙", 0)]));
    }

    #[test]
    fn mixed_text_keeps_positions_and_offsets() {
        let text = "Read 红楼梦 now, カタカナ and 한국어";
        let toks = tokenize(text, Mode::Query);
        let got: Vec<(&str, usize)> = toks.iter().map(|t| (t.text.as_str(), t.position)).collect();
        assert_eq!(
            got,
            [
                ("read", 0),
                ("红楼", 1),
                ("楼梦", 2),
                ("now", 4),
                ("カタ", 5),
                ("タカ", 6),
                ("カナ", 7),
                ("and", 9),
                ("한국", 10),
                ("국어", 11)
            ]
        );
        for t in &toks {
            assert_eq!(text[t.offset_from..t.offset_to].to_lowercase(), t.text);
        }
    }

    #[test]
    fn overlong_runs_are_skipped_and_anything_is_total() {
        let long = "x".repeat(MAX_WORD_CHARS + 1);
        assert_eq!(
            texts(&format!("a {long} b"), Mode::Index),
            owned(&[("a", 0), ("b", 1)])
        );
        for s in [
            "",
            " \u{0}\u{fffd}",
            "\u{20000}\u{20001}",
            "é\u{301}",
            "🙂山",
        ] {
            for t in tokenize(s, Mode::Index) {
                assert!(s.is_char_boundary(t.offset_from) && s.is_char_boundary(t.offset_to));
            }
        }
    }

    #[test]
    fn the_tantivy_stream_yields_the_index_tokens() {
        let mut tok = CjkTokenizer;
        let mut stream = tok.token_stream("Hi 山里");
        let mut seen = Vec::new();
        while stream.advance() {
            seen.push(stream.token().text.clone());
        }
        assert_eq!(seen, ["hi", "山", "山里", "里"]);
    }
}
