//! Test harness: runs the real `sluice` binary on a free loopback port and
//! speaks raw Kafka protocol to it with the `kafka-protocol` crate.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, Encodable, HeaderVersion, StrBytes};

pub struct Broker {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Broker {
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra)
    }

    /// Starts the broker on port 0 and reads the port it bound from its
    /// start-up log line, so parallel tests never race for a port.
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        let log_path = dir.path().join("broker.log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
        let skip = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let started = text.get(skip..).unwrap_or_default().lines().find(|l| l.contains("sluice broker started"));
            if let Some(port) = started
                .and_then(|l| l.split("listen=127.0.0.1:").nth(1))
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|p| p.parse::<u16>().ok()))
            {
                break port;
            }
            assert!(child.try_wait().unwrap().is_none(), "broker exited during start-up: {text}");
            assert!(Instant::now() < deadline, "broker did not start: {text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        Self { port, dir, child }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn connect(&self) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client { stream, next_correlation: 1 }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    /// SIGTERM, then the exit code.
    pub fn terminate(mut self) -> (i32, tempfile::TempDir) {
        unsafe_kill(self.child.id(), "TERM");
        let status = self.child.wait().unwrap();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (status.code().unwrap_or(-1), dir)
    }

    /// SIGKILL: no shutdown work at all, as in a crash.
    pub fn kill9(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Client {
    pub stream: TcpStream,
    next_correlation: i32,
}

impl Client {
    /// Sends `req` as `api` v`version` and returns the correlation id used.
    pub fn send<T: Encodable>(&mut self, api: ApiKey, version: i16, req: &T) -> i32 {
        let correlation_id = self.next_correlation;
        self.next_correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("sluice-tests")));
        let mut body = BytesMut::new();
        encode_request_header_into_buffer(&mut body, &header).unwrap();
        req.encode(&mut body, version).unwrap();
        self.send_raw(&body);
        correlation_id
    }

    pub fn send_raw(&mut self, body: &[u8]) {
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        self.stream.write_all(&frame).unwrap();
    }

    /// Reads one response frame and decodes it as `T` at `version`.
    pub fn recv<T: Decodable + HeaderVersion>(&mut self, version: i16) -> (i32, T) {
        let mut frame = self.recv_frame().expect("connection closed");
        let header = ResponseHeader::decode(&mut frame, T::header_version(version)).unwrap();
        let body = T::decode(&mut frame, version).unwrap();
        (header.correlation_id, body)
    }

    pub fn call<Req: Encodable, Resp: Decodable + HeaderVersion>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        let sent = self.send(api, version, req);
        let (got, resp) = self.recv::<Resp>(version);
        assert_eq!(got, sent, "correlation id echoed");
        resp
    }

    /// One raw frame body, or `None` once the broker has closed the connection.
    pub fn recv_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}

/// An uncompressed v2 batch of `values`, built by the kafka-protocol crate.
pub fn batch(values: &[&[u8]]) -> Bytes {
    producer_batch(-1, -1, 0, values)
}

/// A batch from producer `producer_id` in `epoch`, its records numbered
/// from sequence `first_seq` (-1 and -1: no producer).
pub fn producer_batch(producer_id: i64, epoch: i16, first_seq: i32, values: &[&[u8]]) -> Bytes {
    encode_batch(producer_id, epoch, first_seq, false, values)
}

/// Like [`producer_batch`], marked transactional.
pub fn transactional_batch(producer_id: i64, epoch: i16, first_seq: i32, values: &[&[u8]]) -> Bytes {
    encode_batch(producer_id, epoch, first_seq, true, values)
}

fn encode_batch(producer_id: i64, epoch: i16, first_seq: i32, transactional: bool, values: &[&[u8]]) -> Bytes {
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence is constant.
            sequence: first_seq + i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.freeze()
}
