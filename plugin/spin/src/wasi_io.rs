//! Blocking reads and writes of WASI streams, shared by the callback's request and response
//! and by outbound calls: one bounded read loop and one write loop instead of four.

use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// How much one read asks for.
const READ_CHUNK: u64 = 64 * 1024;
/// `blocking-write-and-flush` accepts at most 4096 bytes per call (the wasi:io contract).
const WRITE_CHUNK: usize = 4096;

/// Why a body could not be read.
pub enum ReadError {
    /// It is larger than the caller accepts; reading stopped there.
    TooLarge,
    Failed(String),
}

/// Reads `stream` to its end, giving up as soon as it holds more than `max` bytes.
pub fn read_to_end(stream: &InputStream, max: usize) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > max {
                    return Err(ReadError::TooLarge);
                }
            }
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(ReadError::Failed(error.to_debug_string()));
            }
        }
    }
}

/// Writes all of `bytes` to `stream`.
pub fn write_all(stream: &OutputStream, bytes: &[u8]) -> Result<(), String> {
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|error| match error {
                StreamError::Closed => "the stream was closed".to_owned(),
                StreamError::LastOperationFailed(error) => error.to_debug_string(),
            })?;
    }
    Ok(())
}
