//! The terminal under the live status view. The block is redrawn in place
//! by moving the cursor up over the rows it took last time, so nothing else
//! may land below it: a log line written there between two redraws would
//! shift the block down, the next redraw would start that many rows too
//! low, and the top of the old block would stay on screen as a stale copy.
//! So while the view is live, everything else bound for the terminal (log
//! lines on stderr, messages while serving) goes through [`Screen`], which
//! clears the block, writes the text where the block was, and draws the
//! block again below it.
//!
//! The row count is only right if no line wrapped, so the view cuts every
//! line to the terminal's width (see `status`); after a narrowing, the
//! lines drawn before were re-wrapped by the terminal and count for more
//! rows ([`rows_taken`]).

use std::io::{self, Write};
use std::sync::Mutex;

/// The one live block on this process's terminal.
pub struct Screen {
    state: Mutex<State>,
}

struct State {
    /// Whether a live view owns the bottom of the terminal.
    live: bool,
    /// The block drawn last (its lines already fit the width).
    block: String,
    /// The widths of its lines, to count the rows it takes.
    widths: Vec<usize>,
}

/// This process's terminal.
pub static SCREEN: Screen = Screen {
    state: Mutex::new(State {
        live: false,
        block: String::new(),
        widths: Vec::new(),
    }),
};

impl Screen {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic mid-draw leaves at worst a garbled block: keep drawing.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the block on screen by `block` (lines that fit `width`
    /// columns), and from now on keeps other output above it.
    pub fn draw(&self, block: &str, width: usize) {
        let mut state = self.state();
        let mut out = io::stdout().lock();
        clear(&mut out, &state.widths, width);
        let _ = write!(out, "{block}");
        let _ = out.flush();
        state.live = true;
        state.block = block.to_string();
        state.widths = block.lines().map(console::measure_text_width).collect();
    }

    /// Leaves the last block on screen as it is; output from now on goes
    /// below it.
    pub fn release(&self) {
        let mut state = self.state();
        state.live = false;
        state.widths.clear();
    }

    /// Writes `text` to `to` (stdout or stderr), above the live block if
    /// there is one.
    fn write_above(&self, to: &mut dyn Write, text: &[u8]) {
        let state = self.state();
        if !state.live {
            let _ = to.write_all(text);
            let _ = to.flush();
            return;
        }
        let width = terminal_width();
        let mut out = io::stdout().lock();
        clear(&mut out, &state.widths, width);
        let _ = out.flush();
        let _ = to.write_all(text);
        let _ = to.flush();
        let _ = write!(out, "{}", state.block);
        let _ = out.flush();
    }

    /// `println!`, above the live block if there is one.
    pub fn println(&self, line: &str) {
        self.write_above(&mut io::stdout(), format!("{line}\n").as_bytes());
    }
}

/// Moves the cursor up over a block of lines this wide and clears from
/// there to the end of the screen.
fn clear(out: &mut impl Write, widths: &[usize], width: usize) {
    let rows = rows_taken(widths, width.max(1));
    if rows > 0 {
        let _ = write!(out, "\x1b[{rows}A\r\x1b[J");
    }
}

/// Columns of the terminal on stdout (80 if it cannot be told).
pub fn terminal_width() -> usize {
    console::Term::stdout()
        .size_checked()
        .map_or(80, |(_, cols)| usize::from(cols))
}

/// Screen rows that lines of these widths take in a terminal `width`
/// columns wide (a line wider than the terminal wraps onto more rows).
fn rows_taken(line_widths: &[usize], width: usize) -> usize {
    line_widths.iter().map(|&w| w.div_ceil(width).max(1)).sum()
}

/// The log's way to stderr (a `tracing_subscriber` writer): each event is
/// one write, put above the live block.
pub struct LogToStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogToStderr {
    type Writer = LogToStderr;

    fn make_writer(&'a self) -> Self::Writer {
        LogToStderr
    }
}

impl Write for LogToStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        SCREEN.write_above(&mut io::stderr(), buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_narrowed_terminal_counts_rewrapped_rows() {
        assert_eq!(rows_taken(&[], 80), 0);
        assert_eq!(rows_taken(&[0, 79, 40], 80), 3);
        // Cut to 119 columns, then the terminal narrowed to 80: each long
        // line now takes two rows.
        assert_eq!(rows_taken(&[119, 119, 30], 80), 5);
    }
}
