//! Guest stdio: stdout/stderr go straight into an [`OutputSink`] as the guest writes
//! (no buffering to the end), stdin reads from a channel of byte chunks (EOF when the
//! sender is dropped).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use wasmtime_wasi::cli::{IsTerminal, StdinStream, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::{OutputSink, Stream};

/// Most bytes a guest may hand over in one write.
const WRITE_BUDGET: usize = 64 << 10;

/// stdout or stderr of one instance.
pub(super) struct SinkStream {
    sink: Arc<dyn OutputSink>,
    stream: Stream,
}

impl SinkStream {
    pub fn new(sink: Arc<dyn OutputSink>, stream: Stream) -> SinkStream {
        SinkStream { sink, stream }
    }
}

impl IsTerminal for SinkStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for SinkStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(SinkWriter { sink: self.sink.clone(), stream: self.stream })
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(SinkWriter { sink: self.sink.clone(), stream: self.stream })
    }
}

struct SinkWriter {
    sink: Arc<dyn OutputSink>,
    stream: Stream,
}

#[wasmtime_wasi::async_trait]
impl Pollable for SinkWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for SinkWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if !bytes.is_empty() {
            self.sink.write(self.stream, &bytes);
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

impl AsyncWrite for SinkWriter {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if !buf.is_empty() {
            self.sink.write(self.stream, buf);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// stdin fed by a channel; every stream the guest opens reads the same channel.
#[derive(Clone)]
pub(super) struct ChannelStdin {
    state: Arc<Mutex<StdinState>>,
}

struct StdinState {
    rx: mpsc::Receiver<Bytes>,
    pending: Bytes,
}

impl ChannelStdin {
    pub fn new(rx: mpsc::Receiver<Bytes>) -> ChannelStdin {
        ChannelStdin { state: Arc::new(Mutex::new(StdinState { rx, pending: Bytes::new() })) }
    }
}

impl IsTerminal for ChannelStdin {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdinStream for ChannelStdin {
    fn async_stream(&self) -> Box<dyn AsyncRead + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncRead for ChannelStdin {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if !st.pending.is_empty() {
                let n = st.pending.len().min(buf.remaining());
                let chunk = st.pending.split_to(n);
                buf.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            match st.rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => st.pending = chunk,
                // Sender gone: end of file.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
