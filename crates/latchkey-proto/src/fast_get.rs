//! The request clients send most, a plain `get`, recognised without serde.
//!
//! A cached `get` costs the daemon less than reading its request line through `serde_json`
//! did (a third of the request's instructions went to the generic map, key and string
//! machinery). This reader accepts one shape only and gives up on anything else:
//!
//! `{"jsonrpc":"2.0","id":ID,"method":"get","params":{"service":S[,"account":A]}}`
//!
//! - members in any order, each once, with JSON whitespace anywhere between tokens;
//! - `ID` a non-negative integer without leading zeros that fits a `u64`, or a string;
//! - every string without escapes or control characters, and UTF-8;
//! - no other member, in the envelope or in `params`.
//!
//! It reads bytes: outside the strings it accepts only ASCII punctuation, digits and
//! whitespace, and it checks the strings it keeps (the names, a string id) are UTF-8, so a
//! line it accepts is UTF-8 without a pass over the whole line.
//!
//! Whatever it gives up on (`None`) is read by `serde_json` as before, so an answer never
//! depends on which reader read the line: everything accepted here is read there to the same
//! request, which the tests check line by line, against serde, over mutations of every byte.

use crate::message::Id;
use crate::types::GetParams;

/// The id and params of `line` if it is a plain `get` (see the module documentation).
pub(crate) fn parse(line: &[u8]) -> Option<(Id, GetParams)> {
    let mut cursor = Cursor { bytes: line, at: 0 };
    cursor.expect(b'{')?;
    let (mut jsonrpc, mut method) = (false, false);
    let (mut id, mut params) = (None, None);
    loop {
        let key = cursor.plain_bytes()?;
        cursor.expect(b':')?;
        match key {
            b"jsonrpc" if !jsonrpc && cursor.plain_bytes()? == b"2.0" => jsonrpc = true,
            b"method" if !method && cursor.plain_bytes()? == b"get" => method = true,
            b"id" if id.is_none() => id = Some(cursor.id()?),
            b"params" if params.is_none() => params = Some(cursor.params()?),
            _ => return None,
        }
        if !cursor.after_member()? {
            break;
        }
    }
    cursor.skip_whitespace();
    if cursor.at != line.len() || !jsonrpc || !method {
        return None;
    }
    Some((id?, params?))
}

/// The bytes a plain string holds: all but the quote, the backslash and control characters.
const PLAIN: [bool; 256] = {
    let mut plain = [true; 256];
    let mut byte = 0;
    while byte < 0x20 {
        plain[byte] = false;
        byte += 1;
    }
    plain[b'"' as usize] = false;
    plain[b'\\' as usize] = false;
    plain
};

/// Eight copies of a byte.
const fn repeated(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

/// In `word`, a high bit set in the first byte (the lowest in memory order) that ends a plain
/// string: a quote, a backslash or a control character, and possibly in later bytes (the usual
/// tricks carry into the bytes after a match, never into those before).
fn string_ends(word: u64) -> u64 {
    const ONES: u64 = repeated(1);
    const HIGH: u64 = repeated(0x80);
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero(word ^ repeated(b'"'));
    let backslash = zero(word ^ repeated(b'\\'));
    let control = word.wrapping_sub(repeated(0x20)) & !word & HIGH;
    quote | backslash | control
}

/// A position in the line.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn skip_whitespace(&mut self) {
        let bytes = self.bytes;
        while matches!(bytes.get(self.at), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, consumed.
    fn next(&mut self) -> Option<u8> {
        self.skip_whitespace();
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// After a member: `true` at a comma (another member follows), `false` at the closing
    /// brace.
    fn after_member(&mut self) -> Option<bool> {
        match self.next()? {
            b',' => Some(true),
            b'}' => Some(false),
            _ => None,
        }
    }

    /// A string with no escape and no control character, without its quotes, as bytes (not
    /// checked to be UTF-8).
    fn plain_bytes(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        let rest = &self.bytes[start..];
        // Eight bytes at a time while the line has eight more, then one at a time.
        let mut len = 0;
        loop {
            match rest.get(len..len + 8) {
                Some(chunk) => {
                    let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
                    let ends = string_ends(word);
                    if ends != 0 {
                        len += (ends.trailing_zeros() / 8) as usize;
                        break;
                    }
                    len += 8;
                }
                None => {
                    len += rest[len..].iter().position(|&b| !PLAIN[usize::from(b)])?;
                    break;
                }
            }
        }
        if rest[len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        Some(&rest[..len])
    }

    /// [`Cursor::plain_bytes`], which must be UTF-8.
    fn plain_str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.plain_bytes()?).ok()
    }

    /// A non-negative integer that fits a `u64`, or a plain string.
    fn id(&mut self) -> Option<Id> {
        self.skip_whitespace();
        let bytes = self.bytes;
        match *bytes.get(self.at)? {
            b'"' => Some(Id::String(self.plain_str()?.to_owned())),
            b'0' => {
                self.at += 1;
                // `0` alone: `01` is not JSON, `0.5` and `0e1` are not integers.
                match bytes.get(self.at) {
                    Some(b'0'..=b'9' | b'.' | b'e' | b'E') => None,
                    _ => Some(Id::from(0)),
                }
            }
            b'1'..=b'9' => {
                let mut value: u64 = 0;
                while let Some(&digit @ b'0'..=b'9') = bytes.get(self.at) {
                    value = value
                        .checked_mul(10)?
                        .checked_add(u64::from(digit - b'0'))?;
                    self.at += 1;
                }
                match bytes.get(self.at) {
                    Some(b'.' | b'e' | b'E') => None,
                    _ => Some(Id::from(value)),
                }
            }
            _ => None,
        }
    }

    /// `{"service":S}` or `{"service":S,"account":A}`, in either order.
    fn params(&mut self) -> Option<GetParams> {
        self.expect(b'{')?;
        let (mut service, mut account) = (None, None);
        loop {
            let key = self.plain_bytes()?;
            self.expect(b':')?;
            match key {
                b"service" if service.is_none() => service = Some(self.plain_str()?),
                b"account" if account.is_none() => account = Some(self.plain_str()?),
                _ => return None,
            }
            if !self.after_member()? {
                break;
            }
        }
        Some(GetParams {
            service: service?.to_owned(),
            account: account.map(str::to_owned),
            scopes: Vec::new(),
            min_valid_secs: None,
            grant: None,
            proxy: false,
            rejected: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::message::{Call, Id, Request};

    /// What serde alone reads `line` to, if a `get`.
    fn by_serde(line: &str) -> Option<(Id, crate::GetParams)> {
        match Request::parse_with_serde(line) {
            Ok(Request {
                id,
                call: Call::Get(params),
            }) => Some((id, params)),
            _ => None,
        }
    }

    /// Whatever this reader accepts, serde reads to the same request.
    fn agrees(line: &str) -> bool {
        match parse(line.as_bytes()) {
            Some(fast) => {
                assert_eq!(Some(fast), by_serde(line), "{line:?}");
                true
            }
            None => false,
        }
    }

    const PLAIN: [&str; 6] = [
        r#"{"jsonrpc":"2.0","id":7,"method":"get","params":{"service":"github"}}"#,
        r#"{"id":18446744073709551615,"jsonrpc":"2.0","method":"get","params":{"account":"work","service":"github"}}"#,
        r#"{"jsonrpc": "2.0", "id": 0, "method": "get", "params": {"service": "bench", "account": "x y"}}"#,
        r#" { "params" : { "service" : "сервис-😀" } , "method" : "get" , "id" : "a-1" , "jsonrpc" : "2.0" } "#,
        "{\t\"jsonrpc\":\"2.0\",\r\n\"id\":\"\",\"method\":\"get\",\"params\":{\"service\":\"\"}}",
        r#"{"jsonrpc":"2.0","id":12,"method":"get","params":{"service":"https://issuer.example/","account":"José"}}"#,
    ];

    #[test]
    fn plain_gets_are_read_here_as_serde_reads_them() {
        for line in PLAIN {
            assert!(agrees(line), "not read here: {line}");
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        for line in [
            // Escapes, control characters, other members, other types, other shapes.
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"a\"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"\u0067"}}"#,
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\",\"params\":{\"service\":\"a\u{1}\"}}",
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"s","scopes":["a"]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"s","account":null}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"s","proxy":true}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"s"},"extra":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"s","service":"t"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"get","params":{"service":"s"}}"#,
            r#"{"jsonrpc":"2.0","id":-1,"method":"get","params":{"service":"s"}}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"get","params":{"service":"s"}}"#,
            r#"{"jsonrpc":"2.0","id":1e3,"method":"get","params":{"service":"s"}}"#,
            r#"{"jsonrpc":"2.0","id":01,"method":"get","params":{"service":"s"}}"#,
            r#"{"jsonrpc":"2.0","id":18446744073709551616,"method":"get","params":{"service":"s"}}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"get","params":{"service":"s"}}"#,
            r#"{"jsonrpc":"2.0","method":"get","params":{"service":"s"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"get"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":["s"]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"set","params":{"service":"s"}}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"get","params":{"service":"s"}}"#,
            r#"{"id":1,"method":"get","params":{"service":"s"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"s"}} x"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"s"},}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"s",}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"s"}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"s"}}]"#,
            "",
            "{}",
        ] {
            assert_eq!(parse(line.as_bytes()), None, "read here: {line}");
        }
    }

    #[test]
    fn a_byte_that_ends_a_string_is_found_wherever_it_is() {
        // Names of every length up to 24 bytes, with each byte in turn replaced by one that
        // ends a plain string or by one that does not (whether eight bytes at a time or one at
        // a time finds it); the name comes last, so the line runs out near it too.
        let special = ["\"", "\\\\", "\u{1}", "\u{1f}", "\n"];
        let ordinary = [" ", "~", "\u{7f}", "é", "😀", "!", "\u{80}"];
        for len in 0..24 {
            for at in 0..=len {
                for (byte, plain) in special
                    .iter()
                    .map(|b| (b, false))
                    .chain(ordinary.iter().map(|b| (b, true)))
                {
                    let name = format!("{}{}{}", "s".repeat(at), byte, "t".repeat(len - at));
                    let line = format!(
                        r#"{{"jsonrpc":"2.0","id":1,"method":"get","params":{{"service":"{}"}}}}"#,
                        name.replace('\n', "\\n")
                    );
                    let read = agrees(&line);
                    let expected = plain && !name.contains('\n');
                    assert_eq!(read, expected, "{line:?}");
                }
            }
        }
    }

    #[test]
    fn a_line_that_is_not_utf8_is_left_to_serde() {
        for name in [&b"\xff"[..], b"a\xc3", b"\xe2\x82", b"ok\xed\xa0\x80"] {
            let mut line =
                br#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":""#.to_vec();
            line.extend_from_slice(name);
            line.extend_from_slice(br#""}}"#);
            assert_eq!(parse(&line), None, "{line:?}");
            let err = Request::parse(&line).unwrap_err();
            assert_eq!(err.error.code, crate::error::PARSE_ERROR, "{line:?}");
        }
    }

    #[test]
    fn no_mutation_of_a_plain_get_is_read_differently_from_serde() {
        // Every byte of each plain line replaced by, and preceded by, each of these, and
        // removed: what this reader still accepts, serde must read the same way.
        let tokens = [
            "", "\"", "\\", "{", "}", "[", ",", ":", " ", "\t", "0", "1", "-", ".", "e", "a",
            "\u{1}", "\u{7f}", "é", "null", "true", "\"x\"",
        ];
        let mut read_here = 0;
        let mut tried = 0;
        for line in PLAIN {
            for (at, _) in line.char_indices() {
                let next = line[at..].chars().next().map_or(0, char::len_utf8);
                for token in tokens {
                    for mutated in [
                        format!("{}{}{}", &line[..at], token, &line[at + next..]),
                        format!("{}{}{}", &line[..at], token, &line[at..]),
                    ] {
                        tried += 1;
                        if agrees(&mutated) {
                            read_here += 1;
                        }
                    }
                }
            }
        }
        // Many mutations stay plain gets (other names, other ids, more whitespace), most
        // do not: both sides of the reader are exercised.
        assert!(
            read_here > 1_000 && read_here < tried / 2,
            "{read_here} of {tried}"
        );
    }
}
