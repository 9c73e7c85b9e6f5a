//! VK's wire formats: the Callback API envelope and message objects, and the API methods the
//! integration calls (`users.get`, `messages.send`).

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::dialog::Attachment;
use crate::error::Error;
use crate::ports::{Http, HttpError, HttpRequest};

/// Where VK's API lives; a host may route it elsewhere (a test stand-in).
const API_BASE: &str = "https://api.vk.com/method/";
/// VK's limit for one message's text; a longer incoming text is cut here.
pub const MAX_TEXT_CHARS: usize = 9000;
/// VK sends at most 10 attachments with a message; more are not kept.
const MAX_ATTACHMENTS: usize = 10;
/// What an attachment's URL, kind and title may hold.
const MAX_URL_CHARS: usize = 2048;
const MAX_FIELD_CHARS: usize = 512;

/// Cuts `text` to its first `max_chars` characters.
pub(crate) fn clip(text: &mut String, max_chars: usize) {
    if let Some((end, _)) = text.char_indices().nth(max_chars) {
        text.truncate(end);
    }
}

/// A Callback API notification: `{type, group_id, event_id, v, secret, object}`. The object
/// is kept as raw text until the sender is known ([`Envelope::object`]): a forged callback
/// costs one linear scan, never a tree.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<'a> {
    #[serde(rename = "type")]
    pub kind: String,
    pub group_id: i64,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default, borrow)]
    object: Option<&'a RawValue>,
}

/// How deeply VK's objects nest, with room to spare: a message with a photo's sizes is
/// five levels deep. Deeper bodies are refused before any tree is built.
pub const MAX_DEPTH: usize = 32;

impl<'a> Envelope<'a> {
    /// The envelope of a callback, which is a JSON object (an array is not read as its
    /// fields in order).
    pub fn parse(body: &'a [u8]) -> Result<Envelope<'a>, Error> {
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Error::MalformedBody("it must be a JSON object".into()));
        }
        serde_json::from_str(json_text(body).map_err(Error::MalformedBody)?)
            .map_err(|e| Error::MalformedBody(e.to_string()))
    }

    /// The event's object (`null` when there is none), parsed once its sender is checked.
    pub fn object(&self) -> Result<Value, Error> {
        let Some(raw) = self.object else {
            return Ok(Value::Null);
        };
        parse_bounded(raw.get().as_bytes())
            .map_err(|e| Error::MalformedBody(format!("object: {e}")))
    }
}

/// Parses JSON whose arrays and objects nest at most [`MAX_DEPTH`] levels deep; the depth is
/// checked on the raw bytes first, so a deep body costs a scan, not a tree.
pub fn parse_bounded<T: serde::de::DeserializeOwned>(json: &[u8]) -> Result<T, String> {
    if nesting(json) > MAX_DEPTH {
        return Err(format!("it nests deeper than {MAX_DEPTH} levels"));
    }
    serde_json::from_str(json_text(json)?).map_err(|e| e.to_string())
}

/// JSON text is UTF-8 (RFC 8259 §8.1). serde_json checks that only in the strings it keeps:
/// a byte that is not UTF-8 in a field nobody reads would pass unnoticed.
fn json_text(json: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(json).map_err(|e| format!("it is not UTF-8: {e}"))
}

/// The deepest nesting of arrays and objects in JSON text (brackets inside strings do not
/// count).
fn nesting(json: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0_usize, 0, false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A private message as VK sends it in callbacks (the fields the CRM keeps).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct VkMessage {
    /// 0 in group chats.
    #[serde(default)]
    pub id: i64,
    #[serde(default)]
    pub date: i64,
    #[serde(default)]
    pub update_time: Option<i64>,
    pub peer_id: i64,
    #[serde(default)]
    pub from_id: i64,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub random_id: i64,
    #[serde(default)]
    pub attachments: Vec<Value>,
}

impl VkMessage {
    /// `message_new`'s object: `{message, client_info}` since API 5.103, the message itself
    /// before.
    pub fn of_message_new(object: Value) -> Result<VkMessage, Error> {
        let message = match object {
            Value::Object(mut fields) if fields.contains_key("message") => {
                fields.remove("message").unwrap_or_default()
            }
            other => other,
        };
        Self::from_value(message)
    }

    /// `message_reply` and `message_edit` carry the message itself. What is kept is bounded
    /// (text, attachments), so no stored message outgrows what a page can carry.
    pub fn from_value(value: Value) -> Result<VkMessage, Error> {
        let mut message: VkMessage = serde_json::from_value(value)
            .map_err(|e| Error::MalformedBody(format!("message: {e}")))?;
        clip(&mut message.text, MAX_TEXT_CHARS);
        message.attachments.truncate(MAX_ATTACHMENTS);
        Ok(message)
    }

    /// A person's private dialog with the community (not a group chat, not a community).
    pub fn is_private(&self) -> bool {
        self.peer_id > 0 && self.peer_id < 2_000_000_000
    }

    pub fn attachments(&self) -> Vec<Attachment> {
        self.attachments.iter().filter_map(attachment).collect()
    }
}

/// `{type, <type>: {...}}` → what an operator needs to see it: its kind, a URL, a title.
fn attachment(raw: &Value) -> Option<Attachment> {
    let kind = raw.get("type")?.as_str()?.to_owned();
    let body = raw.get(&kind).cloned().unwrap_or_default();
    let text = |field: &str| {
        body.get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let id_pair = || {
        Some((
            body.get("owner_id").or(body.get("to_id"))?.as_i64()?,
            body.get("id")?.as_i64()?,
        ))
    };
    let url = match kind.as_str() {
        "photo" => largest(body.get("sizes"), "url"),
        "sticker" => largest(body.get("images"), "url"),
        "audio_message" => text("link_mp3").or_else(|| text("link_ogg")),
        "video" => id_pair().map(|(owner, id)| format!("https://vk.com/video{owner}_{id}")),
        "wall" => id_pair().map(|(owner, id)| format!("https://vk.com/wall{owner}_{id}")),
        _ => text("url"),
    };
    let title = text("title");
    let bounded = |mut text: String, max| {
        clip(&mut text, max);
        text
    };
    Some(Attachment {
        kind: bounded(kind, MAX_FIELD_CHARS),
        url: url.map(|url| bounded(url, MAX_URL_CHARS)),
        title: title.map(|title| bounded(title, MAX_FIELD_CHARS)),
    })
}

/// The URL of the biggest picture of a `sizes`/`images` list.
fn largest(list: Option<&Value>, field: &str) -> Option<String> {
    list?
        .as_array()?
        .iter()
        .max_by_key(|size| {
            let dim = |k: &str| size.get(k).and_then(Value::as_u64).unwrap_or(0);
            dim("width") * dim("height")
        })?
        .get(field)?
        .as_str()
        .map(str::to_owned)
}

/// Why a VK API call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No answer (network, timeout, refused by the host).
    Http(HttpError),
    /// An HTTP status other than 200.
    Status(u16),
    /// VK's `{"error": {...}}`.
    Vk { code: i32, message: String },
    /// Not the JSON VK answers with.
    Malformed,
    /// No community access key is configured, so VK was not called.
    NoAccessKey,
}

impl ApiError {
    /// Whether trying again later can succeed: network trouble, timeouts, server errors,
    /// and VK's "try later" codes (1 unknown, 6 too many requests, 9 flood, 10 internal).
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Http(HttpError::Denied(_)) | ApiError::NoAccessKey => false,
            ApiError::Http(_) | ApiError::Malformed => true,
            ApiError::Status(status) => *status >= 500 || *status == 429,
            ApiError::Vk { code, .. } => matches!(code, 1 | 6 | 9 | 10),
        }
    }

    /// VK's error code, or 0 when VK did not answer.
    pub fn code(&self) -> i32 {
        match self {
            ApiError::Vk { code, .. } => *code,
            _ => 0,
        }
    }

    /// What the failure means for an operator.
    pub fn explain(&self) -> String {
        match self {
            ApiError::Http(e) => e.to_string(),
            ApiError::Status(status) => format!("VK answered with HTTP status {status}"),
            ApiError::Malformed => "VK's answer could not be read".to_owned(),
            ApiError::NoAccessKey => {
                "no community access key is configured: an admin must enter one".to_owned()
            }
            ApiError::Vk { code, message } => match code {
                5 => {
                    "the community access key is invalid or revoked: an admin must enter a new one"
                        .to_owned()
                }
                7 | 15 => "the community access key lacks the right to send messages".to_owned(),
                900 => "the person has put the community on their blacklist".to_owned(),
                901 => "the person has not allowed messages from the community".to_owned(),
                902 => {
                    "the person's privacy settings forbid messages from the community".to_owned()
                }
                914 => "the message is too long for VK".to_owned(),
                _ => format!("VK refused: {message} (error {code})"),
            },
        }
    }
}

/// A client for VK's API with the community's key.
pub(crate) struct Api<'a> {
    pub http: &'a dyn Http,
    pub token: &'a str,
    pub version: &'a str,
}

impl Api<'_> {
    /// POSTs a form to `method` (VK accepts no JSON bodies; long texts must not go in a URL).
    fn call(
        &self,
        method: &str,
        params: &[(&str, &str)],
        timeout_ms: u32,
    ) -> Result<Value, ApiError> {
        let mut body = form_pair("access_token", self.token);
        body.push('&');
        body.push_str(&form_pair("v", self.version));
        for (name, value) in params {
            body.push('&');
            body.push_str(&form_pair(name, value));
        }
        let request = HttpRequest {
            post: true,
            url: format!("{API_BASE}{method}"),
            headers: vec![(
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            )],
            body: body.into_bytes(),
            timeout_ms,
        };
        let response = self.http.send(request).map_err(ApiError::Http)?;
        if response.status != 200 {
            return Err(ApiError::Status(response.status));
        }
        let mut answer: Value =
            serde_json::from_slice(&response.body).map_err(|_| ApiError::Malformed)?;
        if let Some(error) = answer.get("error") {
            let code = error.get("error_code").and_then(Value::as_i64).unwrap_or(0);
            let message = error
                .get("error_msg")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            return Err(ApiError::Vk {
                code: i32::try_from(code).unwrap_or(0),
                message,
            });
        }
        answer
            .get_mut("response")
            .map(Value::take)
            .ok_or(ApiError::Malformed)
    }

    /// `users.get`: first and last names of VK users, by id.
    pub fn user_names(
        &self,
        ids: &[i64],
        timeout_ms: u32,
    ) -> Result<Vec<(i64, String, String)>, ApiError> {
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let answer = self.call("users.get", &[("user_ids", &list)], timeout_ms)?;
        let users = answer.as_array().ok_or(ApiError::Malformed)?;
        Ok(users
            .iter()
            .filter_map(|user| {
                let name = |field: &str| {
                    user.get(field)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                };
                Some((
                    user.get("id")?.as_i64()?,
                    name("first_name"),
                    name("last_name"),
                ))
            })
            .collect())
    }

    /// `messages.send` on behalf of the community; returns VK's message id.
    pub fn send_message(
        &self,
        peer_id: i64,
        random_id: i32,
        text: &str,
        timeout_ms: u32,
    ) -> Result<i64, ApiError> {
        let peer = peer_id.to_string();
        let random = random_id.to_string();
        let answer = self.call(
            "messages.send",
            &[
                ("peer_id", &peer),
                ("random_id", &random),
                ("message", text),
            ],
            timeout_ms,
        )?;
        answer.as_i64().ok_or(ApiError::Malformed)
    }
}

/// `name=value`, percent-encoded as `application/x-www-form-urlencoded`.
fn form_pair(name: &str, value: &str) -> String {
    format!("{}={}", form_encode(name), form_encode(value))
}

fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn message_new_is_read_in_both_shapes() {
        let current = json!({"message": {"id": 7, "peer_id": 5, "from_id": 5, "text": "hi"}, "client_info": {}});
        let old = json!({"id": 7, "peer_id": 5, "from_id": 5, "text": "hi"});
        for object in [current, old] {
            let m = VkMessage::of_message_new(object).expect("both shapes parse");
            assert_eq!((m.id, m.peer_id, m.text.as_str()), (7, 5, "hi"));
        }
    }

    #[test]
    fn attachments_keep_type_best_url_and_title() {
        let m = VkMessage::from_value(json!({"peer_id": 5, "attachments": [
            {"type": "photo", "photo": {"sizes": [
                {"type": "s", "width": 75, "height": 56, "url": "https://x/s.jpg"},
                {"type": "z", "width": 1280, "height": 960, "url": "https://x/z.jpg"},
                {"type": "m", "width": 130, "height": 98, "url": "https://x/m.jpg"}]}},
            {"type": "doc", "doc": {"title": "price.pdf", "url": "https://x/doc"}},
            {"type": "video", "video": {"owner_id": -1, "id": 2, "title": "clip"}}
        ]}))
        .expect("parses");
        let got = m.attachments();
        assert_eq!(
            got[0],
            Attachment {
                kind: "photo".into(),
                url: Some("https://x/z.jpg".into()),
                title: None
            }
        );
        assert_eq!(
            got[1],
            Attachment {
                kind: "doc".into(),
                url: Some("https://x/doc".into()),
                title: Some("price.pdf".into())
            }
        );
        assert_eq!(got[2].url.as_deref(), Some("https://vk.com/video-1_2"));
    }

    #[test]
    fn nesting_counts_brackets_outside_strings_only() {
        assert_eq!(nesting(br#"{"a": [1, {"b": []}]}"#), 4);
        assert_eq!(nesting(br#"{"text": "[[[[{{{{\"]]]]"}"#), 1);
        assert_eq!(nesting(b"42"), 0);
        let deep = format!("{}{}", "[".repeat(33), "]".repeat(33));
        assert_eq!(
            parse_bounded::<Value>(deep.as_bytes()),
            Err("it nests deeper than 32 levels".to_owned())
        );
        let bounded = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert!(matches!(
            parse_bounded::<Value>(bounded.as_bytes()),
            Ok(Value::Array(_))
        ));
    }

    #[test]
    fn json_that_is_not_utf8_is_refused_also_where_nothing_reads_it() {
        // Found by the `callback` fuzz target: the stray byte sat in a field the envelope
        // ignores, and the callback was answered `ok`.
        let body =
            b"{\"group_id\": 218765432, \"type\": \"f3a\", \"\": \"5\x9f\", \"secret\":\"s\"}";
        assert!(matches!(
            Envelope::parse(body),
            Err(Error::MalformedBody(why)) if why.starts_with("it is not UTF-8")
        ));
        #[derive(Deserialize)]
        struct Named {
            name: String,
        }
        let body = b"{\"name\": \"Olga\", \"note\": \"\xff\"}";
        assert!(parse_bounded::<Named>(body).is_err_and(|why| why.starts_with("it is not UTF-8")));
        let named: Named = parse_bounded("{\"name\": \"Olga\", \"note\": \"é\"}".as_bytes())
            .expect("UTF-8 passes");
        assert_eq!(named.name, "Olga");
    }

    #[test]
    fn an_envelope_is_an_object_never_an_array_of_its_fields() {
        for body in [&b"[\"confirmation\", 218765432]"[..], b" null", b"\"x\""] {
            assert!(matches!(
                Envelope::parse(body),
                Err(Error::MalformedBody(why)) if why == "it must be a JSON object"
            ));
        }
    }

    #[test]
    fn clipping_cuts_at_a_character_boundary() {
        let mut text = "ядро".to_owned();
        clip(&mut text, 2);
        assert_eq!(text, "яд");
        let mut short = "ok".to_owned();
        clip(&mut short, 5);
        assert_eq!(short, "ok");
    }

    #[test]
    fn form_encoding_escapes_everything_but_unreserved() {
        assert_eq!(form_pair("message", "a b&c=д"), "message=a+b%26c%3D%D0%B4");
    }

    #[test]
    fn transient_and_permanent_failures_are_told_apart() {
        for code in [1, 6, 9, 10] {
            assert!(
                ApiError::Vk {
                    code,
                    message: String::new()
                }
                .is_transient()
            );
        }
        for code in [5, 7, 15, 901, 902, 914] {
            assert!(
                !ApiError::Vk {
                    code,
                    message: String::new()
                }
                .is_transient()
            );
        }
        assert!(ApiError::Http(HttpError::Timeout).is_transient());
        assert!(ApiError::Status(502).is_transient());
        assert!(!ApiError::Http(HttpError::Denied("x".into())).is_transient());
    }
}
