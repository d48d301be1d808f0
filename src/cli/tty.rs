//! The controlling terminal, read directly (`/dev/tty`), never standard input: what a person
//! types there cannot come from a pipe. A terminal is not a person (`script` gives any process
//! one); what proves the person is the passphrase only they know, read here without echo.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;

/// The longest line read: a passphrase or a confirmation, never a document.
const MAX_LINE: usize = 1024;

pub struct Tty(File);

impl Tty {
    /// The process's controlling terminal, when it has one.
    pub fn open() -> Option<Tty> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()
            .map(Tty)
    }

    /// Shows `prompt` and reads a line, as typed (echoed).
    pub fn ask(&mut self, prompt: &str) -> std::io::Result<String> {
        self.prompt(prompt)?;
        self.line()
    }

    /// Shows `prompt` and reads a line without echo, as `sudo` asks for a password: echo goes off
    /// before the prompt is shown, so nothing typed once it is seen is ever echoed.
    pub fn ask_secret(&mut self, prompt: &str) -> std::io::Result<String> {
        let fd = self.0.as_raw_fd();
        // SAFETY: `fd` is this open terminal's descriptor; `termios` is plain data that
        // `tcgetattr` fills in full before it is read or passed back to `tcsetattr`.
        let saved = unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let old = t;
            t.c_lflag &= !libc::ECHO;
            // TCSANOW, not TCSAFLUSH: what was typed ahead is kept, not thrown away.
            if libc::tcsetattr(fd, libc::TCSANOW, &t) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            old
        };
        let line = self.prompt(prompt).and_then(|()| self.line());
        // SAFETY: as above; `saved` came from `tcgetattr` on the same descriptor.
        unsafe {
            libc::tcsetattr(fd, libc::TCSANOW, &saved);
        }
        writeln!(self.0)?;
        line
    }

    fn prompt(&mut self, prompt: &str) -> std::io::Result<()> {
        write!(self.0, "{prompt}")?;
        self.0.flush()
    }

    /// One line, without its end; an empty one at the end of input.
    fn line(&mut self) -> std::io::Result<String> {
        let mut bytes = Vec::new();
        let mut byte = [0u8; 1];
        while bytes.len() < MAX_LINE {
            match self.0.read(&mut byte)? {
                0 => break,
                _ if byte[0] == b'\n' => break,
                _ => bytes.push(byte[0]),
            }
        }
        let line = String::from_utf8_lossy(&bytes);
        Ok(line.trim_end_matches('\r').to_string())
    }
}
