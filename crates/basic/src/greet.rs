//! greet: the course's first TCP server.
//!
//! ```text
//! S: Welcome!\n
//! S: What's your name?          (no newline, as the course server sends it)
//! C: alice                      (one unterminated send, or a line "alice\n" from nc)
//! S: Hello alice!\n
//! S: What's your name?
//! C: exit
//! S: Good bye!\n                 (then close)
//! ```

use std::io;

use async_trait::async_trait;
use sockit_runtime::guarded::RequestClock;
use sockit_runtime::server::{ConnInfo, Refusal, ServiceStream, TcpService};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The welcome line.
pub(crate) const WELCOME: &[u8] = b"Welcome!\n";
/// The prompt (no newline, byte-compatible with the course server).
pub(crate) const PROMPT: &[u8] = b"What's your name?";
/// The farewell line.
pub(crate) const GOODBYE: &[u8] = b"Good bye!\n";

/// Splits the bytes of one read into messages (CR/LF trimmed, empty lines dropped).
///
/// A message is a line (LF or CRLF terminated), or, for clients that send one unterminated
/// message per `send()` as the course client does, whatever is left at the end of a read.
pub(crate) fn split_messages(read: &[u8]) -> Vec<Vec<u8>> {
    read.split(|&b| b == b'\n')
        .map(trim_crlf)
        .filter(|m| !m.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn trim_crlf(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b'\n'] = s {
        s = rest;
    }
    s
}

/// The reply to one message, and whether the dialogue ends after it.
pub(crate) fn reply(message: &[u8]) -> (Vec<u8>, bool) {
    if message == b"exit" {
        (GOODBYE.to_vec(), true)
    } else {
        let mut r = b"Hello ".to_vec();
        r.extend_from_slice(message);
        r.extend_from_slice(b"!\n");
        (r, false)
    }
}

/// The greet server.
#[derive(Debug, Default, Clone)]
pub struct GreetService;

/// Runs the server side of the dialogue on any stream until `exit`, EOF or shutdown.
///
/// # Errors
/// I/O errors (including the runtime's timeouts).
///
/// Every read is a whole message in this protocol (the course client sends each name in
/// one unterminated `send()`), so each one is reported on `clock`.
pub(crate) async fn serve_dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    shutdown: &tokio_util::sync::CancellationToken,
    clock: &RequestClock,
) -> io::Result<String> {
    stream.write_all(WELCOME).await?;
    stream.write_all(PROMPT).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = stream.write_all(b"\nServer shutting down. Good bye!\n").await;
                return Ok("server shutting down".into());
            }
            r = stream.read(&mut buf) => r?,
        };
        if n == 0 {
            return Ok("client closed".into());
        }
        clock.request_complete();
        for message in split_messages(&buf[..n]) {
            let (text, done) = reply(&message);
            stream.write_all(&text).await?;
            if done {
                return Ok("client said exit".into());
            }
            stream.write_all(PROMPT).await?;
        }
    }
}

#[async_trait]
impl TcpService for GreetService {
    fn name(&self) -> &'static str {
        "greet"
    }

    async fn handle(&self, mut stream: ServiceStream, info: ConnInfo) -> io::Result<String> {
        serve_dialogue(&mut stream, &info.shutdown, &info.clock).await
    }

    async fn refuse(&self, mut stream: TcpStream, refusal: Refusal) {
        let _ = stream
            .write_all(format!("Server busy: {refusal}\n").as_bytes())
            .await;
    }
}

/// What the client saw in one step of the dialogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSays {
    /// Text followed by the name prompt: the server waits for a name.
    Prompt(String),
    /// Text after which the server closed the connection.
    Closed(String),
}

/// The client side: reads server text up to the next prompt or the end of the connection.
#[derive(Debug)]
pub struct GreetClient<S> {
    stream: S,
    buf: Vec<u8>,
}

impl GreetClient<TcpStream> {
    /// Connects to a greet server.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn connect(addr: &str) -> io::Result<Self> {
        Ok(Self::new(TcpStream::connect(addr).await?))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> GreetClient<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads until the server prompts for a name or closes.
    ///
    /// # Errors
    /// I/O errors.
    pub async fn next(&mut self) -> io::Result<ServerSays> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(pos) = find(&self.buf, PROMPT) {
                let text = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                self.buf.drain(..pos + PROMPT.len());
                return Ok(ServerSays::Prompt(text));
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                let text = String::from_utf8_lossy(&self.buf).into_owned();
                self.buf.clear();
                return Ok(ServerSays::Closed(text));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends one name (as a line).
    ///
    /// # Errors
    /// I/O errors.
    pub async fn send_name(&mut self, name: &str) -> io::Result<()> {
        self.stream.write_all(format!("{name}\n").as_bytes()).await
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unterminated_send_is_one_message() {
        assert_eq!(split_messages(b"alice"), vec![b"alice".to_vec()]);
    }

    #[test]
    fn lines_and_crlf() {
        assert_eq!(
            split_messages(b"alice\r\nbob\n\nexit"),
            vec![b"alice".to_vec(), b"bob".to_vec(), b"exit".to_vec()]
        );
    }

    #[test]
    fn empty_line_is_ignored() {
        assert!(split_messages(b"\r\n").is_empty());
    }

    #[test]
    fn replies() {
        assert_eq!(reply(b"Bob"), (b"Hello Bob!\n".to_vec(), false));
        assert_eq!(reply(b"exit"), (b"Good bye!\n".to_vec(), true));
    }

    #[tokio::test]
    async fn dialogue_over_a_pipe() {
        let (mut server, client) = tokio::io::duplex(1024);
        let token = tokio_util::sync::CancellationToken::new();
        let task =
            tokio::spawn(
                async move { serve_dialogue(&mut server, &token, &RequestClock::new()).await },
            );
        let mut c = GreetClient::new(client);
        assert_eq!(
            c.next().await.unwrap(),
            ServerSays::Prompt("Welcome!\n".into())
        );
        c.send_name("alice").await.unwrap();
        assert_eq!(
            c.next().await.unwrap(),
            ServerSays::Prompt("Hello alice!\n".into())
        );
        c.send_name("exit").await.unwrap();
        assert_eq!(
            c.next().await.unwrap(),
            ServerSays::Closed("Good bye!\n".into())
        );
        assert_eq!(task.await.unwrap().unwrap(), "client said exit");
    }
}
