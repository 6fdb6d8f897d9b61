//! A real SMTP server on a free port for the tests of mail: plain SMTP without TLS or
//! AUTH, as `smtp://127.0.0.1:PORT` in lettre's URL form, keeping what it accepts.
//!
//! Faults for the tests of retries: [`SmtpServer::refuse_next`] answers the next
//! messages with an error, and [`SmtpServer::stop`] / [`SmtpServer::restart`] take the
//! server down and up again on the same port.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// No STARTTLS and no AUTH: lettre must send in the clear without logging in.
const EHLO: &str = "250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760";

/// A message the server accepted: its envelope and the RFC 5322 message as sent, with
/// the dot-stuffing undone.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl Received {
    /// The first header field of that name, unfolded, its encoded-words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.data, name)
    }

    /// The decoded text/plain part (or the whole body of a text/plain message).
    pub fn text_body(&self) -> Option<String> {
        find_part(&self.data, "text/plain")
    }

    /// The decoded text/html part.
    pub fn html_body(&self) -> Option<String> {
        find_part(&self.data, "text/html")
    }
}

#[derive(Clone, Debug, Default)]
struct State {
    messages: Vec<Received>,
    /// MAIL FROM commands: what a retry test counts, refused transactions included.
    attempts: usize,
    refusals: usize,
    refusal_code: u16,
}

pub struct SmtpServer {
    port: u16,
    /// A watch channel so that [`SmtpServer::wait_for`] wakes on each change.
    state: Arc<watch::Sender<State>>,
    /// The stop signal and the accepting task, while the server runs.
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl SmtpServer {
    pub async fn start() -> Self {
        let mut server =
            Self { port: 0, state: Arc::new(watch::Sender::new(State::default())), running: None };
        server.listen().await;
        server
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn messages(&self) -> Vec<Received> {
        self.state.borrow().messages.clone()
    }

    /// MAIL FROM commands seen, over restarts.
    pub fn attempts(&self) -> usize {
        self.state.borrow().attempts
    }

    /// Answers the next `count` messages (the reply after DATA's final dot) with `code`
    /// instead of accepting them: 4xx for a temporary failure, 5xx for a permanent one.
    pub fn refuse_next(&self, count: usize, code: u16) {
        assert!((400..600).contains(&code), "an SMTP error is 4xx or 5xx, not {code}");
        self.state.send_modify(|state| {
            state.refusals = count;
            state.refusal_code = code;
        });
    }

    /// All the messages once at least `count` have arrived; panics after `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let what = format!("{count} message(s)");
        self.wait_until(&what, timeout, |state| state.messages.len() >= count).await.messages
    }

    /// The first `count` messages once they have arrived, taken away: a test takes what
    /// it is done with (a signup's verification mail), so that the messages it counts next
    /// are the ones it is after.
    pub async fn take(&self, count: usize, timeout: Duration) -> Vec<Received> {
        self.wait_for(count, timeout).await;
        let mut taken = Vec::new();
        self.state.send_modify(|state| taken = state.messages.drain(..count).collect());
        taken
    }

    /// The attempts once at least `count` MAIL FROM have arrived; panics after `timeout`.
    pub async fn wait_for_attempts(&self, count: usize, timeout: Duration) -> usize {
        let what = format!("{count} MAIL FROM");
        self.wait_until(&what, timeout, |state| state.attempts >= count).await.attempts
    }

    async fn wait_until(&self, what: &str, timeout: Duration, done: impl FnMut(&State) -> bool) -> State {
        let mut changes = self.state.subscribe();
        match tokio::time::timeout(timeout, changes.wait_for(done)).await {
            Ok(state) => state.expect("the server holds the sender").clone(),
            Err(_) => {
                let state = self.state.borrow();
                panic!(
                    "the SMTP server did not get {what} within {timeout:?}: it has {} message(s) after {} MAIL FROM",
                    state.messages.len(),
                    state.attempts
                )
            }
        }
    }

    /// Closes the listener and every connection: a client then finds the port refusing.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            task.await.expect("the SMTP server's task does not panic");
        }
    }

    /// Stops the server if it runs and starts it again on the same port, keeping the
    /// messages, the attempts and any refusals still due.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.listen().await;
    }

    async fn listen(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap_or_else(|e| panic!("the SMTP server cannot listen on 127.0.0.1:{}: {e}", self.port));
        self.port = listener.local_addr().unwrap().port();
        let (stop, stopped) = oneshot::channel();
        self.running = Some((stop, tokio::spawn(accept(listener, self.state.clone(), stopped))));
    }
}

/// Serves connections until told to stop or the server is dropped (the sender with it),
/// then waits for the connections to close, so that a stopped server answers nobody.
async fn accept(listener: TcpListener, state: Arc<watch::Sender<State>>, mut stop: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve(stream, state.clone()));
                }
            }
            Some(_) = connections.join_next() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve(stream: TcpStream, state: Arc<watch::Sender<State>>) -> io::Result<()> {
    let mut stream = BufReader::new(stream);
    stream.write_all(b"220 localhost ESMTP tollgate test server\r\n").await?;
    let mut envelope: Option<(String, Vec<String>)> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        if stream.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
        let reply: String = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                envelope = None;
                EHLO.into()
            }
            "HELO" => {
                envelope = None;
                "250 localhost".into()
            }
            "MAIL" => match path(argument, "FROM:") {
                Some(from) => {
                    state.send_modify(|state| state.attempts += 1);
                    envelope = Some((from, Vec::new()));
                    "250 2.1.0 OK".into()
                }
                None => "501 5.5.4 syntax: MAIL FROM:<address>".into(),
            },
            "RCPT" => match (&mut envelope, path(argument, "TO:")) {
                (None, _) => "503 5.5.1 MAIL first".into(),
                (Some(_), None) => "501 5.5.4 syntax: RCPT TO:<address>".into(),
                (Some((_, to)), Some(recipient)) => {
                    to.push(recipient);
                    "250 2.1.5 OK".into()
                }
            },
            "DATA" => match envelope.take() {
                Some((from, to)) if !to.is_empty() => {
                    stream.write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n").await?;
                    let data = read_data(&mut stream).await?;
                    deliver(&state, Received { from, to, data })
                }
                not_ready => {
                    envelope = not_ready;
                    "503 5.5.1 RCPT first".into()
                }
            },
            "RSET" => {
                envelope = None;
                "250 2.0.0 OK".into()
            }
            "NOOP" => "250 2.0.0 OK".into(),
            "QUIT" => {
                stream.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 command not recognised".into(),
        };
        stream.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// The address in `FROM:<address> PARAMETERS` (or `TO:`); the null path `<>` is "".
fn path(argument: &str, keyword: &str) -> Option<String> {
    let rest = argument.get(..keyword.len()).filter(|k| k.eq_ignore_ascii_case(keyword))?;
    let rest = argument[rest.len()..].trim_start();
    Some(rest.strip_prefix('<')?.split_once('>')?.0.to_owned())
}

/// The message up to the line holding a single dot, with a leading dot taken off every
/// other line (RFC 5321 4.5.2). The line break before the dot goes with it: lettre sends
/// `\r\n.\r\n` after a message that ends in one already, so the data is the message it
/// formatted.
async fn read_data(stream: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut data = Vec::new();
    loop {
        let start = data.len();
        if stream.read_until(b'\n', &mut data).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = &data[start..];
        if line == b".\r\n" || line == b".\n" {
            data.truncate(start);
            let end = data.strip_suffix(b"\r\n").or(data.strip_suffix(b"\n")).unwrap_or(&data).len();
            data.truncate(end);
            return Ok(String::from_utf8_lossy(&data).into_owned());
        }
        if line.starts_with(b".") {
            data.remove(start);
        }
    }
}

/// Keeps the message, or refuses it if a refusal is due; the reply to the message.
fn deliver(state: &watch::Sender<State>, message: Received) -> String {
    let mut reply = "250 2.0.0 OK queued".to_owned();
    state.send_modify(|state| {
        if state.refusals > 0 {
            state.refusals -= 1;
            let text = if state.refusal_code < 500 { "try again later" } else { "refused" };
            reply = format!("{} {text}", state.refusal_code);
        } else {
            state.messages.push(message);
        }
    });
    reply
}

/// The header section and the body of a message or a MIME part.
fn split_entity(entity: &str) -> (&str, &str) {
    let mut offset = 0;
    for line in entity.split_inclusive('\n') {
        if line.trim_end_matches(['\r', '\n']).is_empty() {
            return (&entity[..offset], &entity[offset + line.len()..]);
        }
        offset += line.len();
    }
    (entity, "")
}

fn header(entity: &str, name: &str) -> Option<String> {
    let mut fields: Vec<String> = Vec::new();
    for line in split_entity(entity).0.lines() {
        match fields.last_mut() {
            Some(field) if line.starts_with([' ', '\t']) => field.push_str(line),
            _ => fields.push(line.to_owned()),
        }
    }
    fields.iter().find_map(|field| {
        let (field_name, value) = field.split_once(':')?;
        field_name.trim().eq_ignore_ascii_case(name).then(|| decode_words(value.trim()))
    })
}

/// Decodes RFC 2047 encoded-words, as UTF-8 whatever their charset; the white space
/// between two of them goes, as folding puts it there. The bytes are joined before they
/// become text, since some encoders cut a character across two words.
fn decode_words(value: &str) -> String {
    let mut decoded = Vec::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, candidate) = rest.split_at(start);
        match encoded_word(candidate) {
            Some((bytes, length)) => {
                if !(after_word && before.trim().is_empty()) {
                    decoded.extend_from_slice(before.as_bytes());
                }
                decoded.extend(bytes);
                rest = &candidate[length..];
                after_word = true;
            }
            None => {
                decoded.extend_from_slice(&rest.as_bytes()[..start + 2]);
                rest = &candidate[2..];
                after_word = false;
            }
        }
    }
    decoded.extend_from_slice(rest.as_bytes());
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The bytes of the `=?charset?encoding?text?=` that `candidate` starts with, and its length.
fn encoded_word(candidate: &str) -> Option<(Vec<u8>, usize)> {
    let mut fields = candidate[2..].splitn(3, '?');
    let (charset, encoding, rest) = (fields.next()?, fields.next()?, fields.next()?);
    let text = &rest[..rest.find("?=")?];
    let bytes = match encoding {
        "B" | "b" => BASE64.decode(text).ok()?,
        "Q" | "q" => quoted_printable(&text.replace('_', " ")),
        _ => return None,
    };
    Some((bytes, "=?".len() + charset.len() + encoding.len() + text.len() + "???=".len()))
}

fn quoted_printable(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .map(|hex| u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            // A soft line break, which the encoder added to keep lines short.
            (b'=', None) if bytes[i + 1..].starts_with(b"\r\n") => i += 3,
            (b'=', None) if bytes[i + 1..].starts_with(b"\n") => i += 2,
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    decoded
}

/// The first part of type `mime` in `entity`, searched through nested multiparts, its
/// transfer encoding undone.
fn find_part(entity: &str, mime: &str) -> Option<String> {
    let content_type = header(entity, "content-type").unwrap_or_else(|| "text/plain".to_owned());
    let (kind, parameters) = content_type.split_once(';').unwrap_or((&content_type, ""));
    let kind = kind.trim().to_ascii_lowercase();
    let body = split_entity(entity).1;
    if kind.starts_with("multipart/") {
        let boundary = parameter(parameters, "boundary").expect("a multipart has a boundary");
        return parts(body, &boundary).into_iter().find_map(|part| find_part(part, mime));
    }
    if kind != mime {
        return None;
    }
    let encoding = header(entity, "content-transfer-encoding").unwrap_or_default().to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "base64" => {
            let text: String = body.split_ascii_whitespace().collect();
            BASE64.decode(text).unwrap_or_else(|e| panic!("the {mime} part is not base64: {e}"))
        }
        "quoted-printable" => quoted_printable(body),
        _ => body.as_bytes().to_vec(),
    };
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn parameter(parameters: &str, name: &str) -> Option<String> {
    parameters.split(';').find_map(|parameter| {
        let (key, value) = parameter.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The parts between the boundary lines; the line break before a boundary line is the
/// boundary's (RFC 2046 5.1.1).
fn parts<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    body.split(delimiter.as_str())
        .skip(1)
        .take_while(|chunk| !chunk.starts_with("--"))
        .map(|chunk| {
            let part = chunk.split_once('\n').map_or("", |(_, part)| part);
            part.strip_suffix('\n').map_or(part, |part| part.strip_suffix('\r').unwrap_or(part))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wide enough for a loaded machine: only a broken server takes this long.
    const PATIENCE: Duration = Duration::from_secs(20);

    /// A client writing the SMTP dialogue by hand.
    struct Client(BufReader<TcpStream>);

    impl Client {
        async fn connect(server: &SmtpServer) -> Self {
            let stream = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
            let mut client = Self(BufReader::new(stream));
            assert!(client.reply().await.starts_with("220 "));
            client
        }

        /// A whole reply, its lines joined by CRLF.
        async fn reply(&mut self) -> String {
            let mut reply = String::new();
            loop {
                let mut line = String::new();
                assert_ne!(self.0.read_line(&mut line).await.unwrap(), 0, "the server hung up");
                reply.push_str(&line);
                if line.as_bytes().get(3) != Some(&b'-') {
                    return reply.trim_end().to_owned();
                }
            }
        }

        async fn send(&mut self, command: &str) -> String {
            self.0.write_all(format!("{command}\r\n").as_bytes()).await.unwrap();
            self.reply().await
        }

        /// One transaction of an already dot-stuffed message; the reply to the message.
        async fn mail(&mut self, from: &str, to: &[&str], message: &str) -> String {
            assert_eq!(self.send(&format!("MAIL FROM:<{from}> BODY=8BITMIME")).await, "250 2.1.0 OK");
            for recipient in to {
                assert_eq!(self.send(&format!("RCPT TO:<{recipient}>")).await, "250 2.1.5 OK");
            }
            assert!(self.send("DATA").await.starts_with("354 "));
            self.0.write_all(message.as_bytes()).await.unwrap();
            self.send(".").await
        }
    }

    fn message(subject: &str) -> String {
        format!("From: a@tollgate.test\r\nSubject: {subject}\r\n\r\nHello\r\n")
    }

    #[tokio::test]
    async fn speaks_smtp_and_keeps_the_envelope_and_the_message() {
        let server = SmtpServer::start().await;
        assert_eq!(server.url(), format!("smtp://127.0.0.1:{}", server.port));
        let mut client = Client::connect(&server).await;

        let ehlo = client.send("EHLO client.test").await;
        assert!(ehlo.starts_with("250-localhost\r\n"), "{ehlo}");
        for extension in ["8BITMIME", "SMTPUTF8", "SIZE"] {
            assert!(ehlo.lines().any(|line| line[4..].starts_with(extension)), "{extension} in {ehlo}");
        }
        assert!(!ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"), "{ehlo}");
        assert_eq!(client.send("HELO client.test").await, "250 localhost");
        assert_eq!(client.send("NOOP").await, "250 2.0.0 OK");
        assert!(client.send("VRFY alice").await.starts_with("502 "));
        assert!(client.send("RCPT TO:<b@example.com>").await.starts_with("503 "));
        assert!(client.send("MAIL FROM:alice").await.starts_with("501 "));

        let data = "Subject: dots\r\n\r\n..a line that starts with a dot\r\n...\r\nend\r\n";
        let reply = client.mail("a@tollgate.test", &["b@example.com", "c@example.com"], data).await;
        assert_eq!(reply, "250 2.0.0 OK queued");
        let expected = Received {
            from: "a@tollgate.test".to_owned(),
            to: vec!["b@example.com".to_owned(), "c@example.com".to_owned()],
            data: "Subject: dots\r\n\r\n.a line that starts with a dot\r\n..\r\nend".to_owned(),
        };
        assert_eq!(server.messages(), [expected]);
        assert_eq!(server.messages()[0].text_body().unwrap(), ".a line that starts with a dot\r\n..\r\nend");

        // RSET ends the transaction: its recipients are not kept for the next DATA.
        client.send("MAIL FROM:<a@tollgate.test>").await;
        client.send("RCPT TO:<b@example.com>").await;
        assert_eq!(client.send("RSET").await, "250 2.0.0 OK");
        assert!(client.send("DATA").await.starts_with("503 "));

        assert!(client.send("QUIT").await.starts_with("221 "));
        assert_eq!(client.0.read_line(&mut String::new()).await.unwrap(), 0, "QUIT closes the connection");
        assert_eq!(server.attempts(), 2);
        assert_eq!(server.messages().len(), 1);
    }

    #[tokio::test]
    async fn tolerates_bare_line_feeds() {
        let server = SmtpServer::start().await;
        let mut client = Client::connect(&server).await;
        client.0.write_all(b"HELO x\nMAIL FROM:<>\nRCPT TO:<b@example.com>\nDATA\n").await.unwrap();
        for _ in 0..4 {
            client.reply().await;
        }
        client.0.write_all(b"Subject: lf\n\n..dot\n.\n").await.unwrap();
        assert_eq!(client.reply().await, "250 2.0.0 OK queued");

        let received = &server.wait_for(1, PATIENCE).await[0];
        assert_eq!((received.from.as_str(), received.data.as_str()), ("", "Subject: lf\n\n.dot"));
        assert_eq!(received.header("subject").unwrap(), "lf");
    }

    #[tokio::test]
    async fn decodes_a_base64_multipart_message() {
        let server = SmtpServer::start().await;
        let data = "From: Tollgate <noreply@tollgate.test>\r\n\
            To: alice@example.com\r\n\
            Subject: =?utf-8?b?QmVzdMOkdGlnZSBkZWluZSBFLU1h?=\r\n \
            =?utf-8?b?aWwtQWRyZXNzZSBmw7xyIFRvbGxnYXRl?=\r\n\
            MIME-Version: 1.0\r\n\
            Content-Type: multipart/alternative;\r\n boundary=\"b1_XyZ\"\r\n\
            \r\n\
            --b1_XyZ\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: base64\r\n\
            \r\n\
            SGFsbG8gw4VsaWNlLA0KDQpiZXN0w6R0aWdlIGRlaW5lIEFkcmVzc2U6IGh0dHBzOi8vdG9sbGdh\r\n\
            dGUudGVzdC92ZXJpZnk/dG9rZW49YWJjDQo=\r\n\
            --b1_XyZ\r\n\
            Content-Type: text/html; charset=utf-8\r\n\
            Content-Transfer-Encoding: base64\r\n\
            \r\n\
            PHA+SGFsbG8gw4VsaWNlLDwvcD48cD48YSBocmVmPSJodHRwczovL3RvbGxnYXRlLnRlc3QvdmVy\r\n\
            aWZ5P3Rva2VuPWFiYyI+YmVzdMOkdGlnZW48L2E+PC9wPg==\r\n\
            --b1_XyZ--\r\n";
        Client::connect(&server).await.mail("noreply@tollgate.test", &["alice@example.com"], data).await;

        let received = &server.wait_for(1, PATIENCE).await[0];
        assert_eq!(received.header("SUBJECT").unwrap(), "Bestätige deine E-Mail-Adresse für Tollgate");
        assert_eq!(received.header("from").unwrap(), "Tollgate <noreply@tollgate.test>");
        assert_eq!(received.header("content-type").unwrap(), "multipart/alternative; boundary=\"b1_XyZ\"");
        assert_eq!(received.header("cc"), None);
        assert_eq!(
            received.text_body().unwrap(),
            "Hallo Ålice,\r\n\r\nbestätige deine Adresse: https://tollgate.test/verify?token=abc\r\n"
        );
        assert_eq!(
            received.html_body().unwrap(),
            "<p>Hallo Ålice,</p><p><a href=\"https://tollgate.test/verify?token=abc\">bestätigen</a></p>"
        );
    }

    #[tokio::test]
    async fn decodes_a_quoted_printable_multipart_message() {
        let server = SmtpServer::start().await;
        let data = "Subject: =?utf-8?q?Passwort_zur=C3=BCcksetzen?= (Tollgate)\r\n\
            Content-Type: multipart/alternative; boundary=qp\r\n\
            \r\n\
            This is the preamble.\r\n\
            --qp\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\
            \r\n\
            Setze dein Passwort zur=C3=BCck: https://tollgate.test/reset?token=3Dab=\r\n\
            c&x=3D1\r\n\
            ..\r\n\
            --qp\r\n\
            Content-Type: text/html; charset=utf-8\r\n\
            Content-Transfer-Encoding: 7bit\r\n\
            \r\n\
            <a href=\"https://tollgate.test/reset\">reset</a>\r\n\
            --qp--\r\n\
            The epilogue.\r\n";
        Client::connect(&server).await.mail("a@tollgate.test", &["b@example.com"], data).await;

        let received = &server.wait_for(1, PATIENCE).await[0];
        assert_eq!(received.header("subject").unwrap(), "Passwort zurücksetzen (Tollgate)");
        assert_eq!(
            received.text_body().unwrap(),
            "Setze dein Passwort zurück: https://tollgate.test/reset?token=abc&x=1\r\n."
        );
        assert_eq!(received.html_body().unwrap(), "<a href=\"https://tollgate.test/reset\">reset</a>");
    }

    #[test]
    fn leaves_text_that_is_not_an_encoded_word() {
        assert_eq!(decode_words("a =?x b =?utf-8?q?=C3=A9?= =?utf-8?z?x?= c"), "a =?x b é =?utf-8?z?x?= c");
        assert_eq!(decode_words("=?utf-8?b?w6k=?= =?utf-8?b?w6k=?= x"), "éé x");
    }

    #[tokio::test]
    async fn wait_for_wakes_on_the_messages_it_waits_for() {
        let server = SmtpServer::start().await;
        let send = async {
            let mut client = Client::connect(&server).await;
            for subject in ["one", "two"] {
                client.mail("a@tollgate.test", &["b@example.com"], &message(subject)).await;
            }
        };
        let (received, ()) = tokio::join!(server.wait_for(2, PATIENCE), send);
        let subjects: Vec<_> = received.iter().map(|m| m.header("subject").unwrap()).collect();
        assert_eq!(subjects, ["one", "two"]);
        assert_eq!(server.wait_for_attempts(2, PATIENCE).await, 2);
    }

    // The one wait here that must run out, so it is short.
    #[tokio::test]
    #[should_panic(expected = "did not get 1 message(s) within 50ms: it has 0 message(s) after 1 MAIL FROM")]
    async fn wait_for_panics_when_the_messages_do_not_come() {
        let server = SmtpServer::start().await;
        let mut client = Client::connect(&server).await;
        client.send("MAIL FROM:<a@tollgate.test>").await;
        server.wait_for(1, Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn refuses_as_many_messages_as_asked() {
        let server = SmtpServer::start().await;
        server.refuse_next(2, 451);
        let mut client = Client::connect(&server).await;
        let mut replies = Vec::new();
        for subject in ["one", "two", "three"] {
            replies.push(client.mail("a@tollgate.test", &["b@example.com"], &message(subject)).await);
        }
        assert_eq!(replies, ["451 try again later", "451 try again later", "250 2.0.0 OK queued"]);
        server.refuse_next(1, 554);
        assert_eq!(client.mail("a@tollgate.test", &["b@example.com"], &message("four")).await, "554 refused");

        assert_eq!(server.attempts(), 4);
        let received = server.messages();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].header("subject").unwrap(), "three");
    }

    #[tokio::test]
    async fn restarts_on_the_same_port() {
        let mut server = SmtpServer::start().await;
        let url = server.url();
        let mut before = Client::connect(&server).await;
        before.mail("a@tollgate.test", &["b@example.com"], &message("before")).await;

        server.stop().await;
        let refused = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        let mut buffer = String::new();
        assert_eq!(before.0.read_line(&mut buffer).await.unwrap_or(0), 0, "stop closes the connections");

        server.restart().await;
        assert_eq!(server.url(), url);
        Client::connect(&server).await.mail("a@tollgate.test", &["b@example.com"], &message("after")).await;
        let subjects: Vec<_> = server.messages().iter().map(|m| m.header("subject").unwrap()).collect();
        assert_eq!(subjects, ["before", "after"]);
        assert_eq!(server.attempts(), 2);
    }
}
