// Progress of a long operator command on stderr: a bar redrawn in place on a terminal, and otherwise
// (a log file, a CI job) a plain line at every tenth of the way and at least every few seconds.
export interface ProgressReporter {
  update(done: number, total: number): void;
  /** Draws the final state and ends the line. */
  finish(): void;
}

export interface ProgressOptions {
  stream?: NodeJS.WriteStream;
  /** Words after the counts: "keys re-wrapped". */
  unit: string;
  /** Prefix of each plain line. */
  label: string;
  /** Longest gap between plain lines while work goes on, ms. Default 5000. */
  lineEveryMs?: number;
}

const BAR_WIDTH = 30;

function percent(done: number, total: number): number {
  return total === 0 ? 100 : Math.floor((done / total) * 100);
}

export function createProgress(opts: ProgressOptions): ProgressReporter {
  const stream = opts.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const lineEveryMs = opts.lineEveryMs ?? 5000;
  let last = { done: 0, total: 0 };
  let lastDraw = 0;
  let lastTenth = -1;
  let lastLine = '';

  const bar = ({ done, total }: typeof last) => {
    const filled = total === 0 ? BAR_WIDTH : Math.round((done / total) * BAR_WIDTH);
    return `\r[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${done}/${total} ${opts.unit} ${percent(done, total)}%`;
  };
  const line = ({ done, total }: typeof last) =>
    `${opts.label}: ${done}/${total} ${opts.unit} (${percent(done, total)}%)\n`;

  return {
    update(done, total) {
      last = { done, total };
      const now = Date.now();
      if (tty) {
        if (now - lastDraw >= 100) {
          stream.write(bar(last));
          lastDraw = now;
        }
        return;
      }
      const tenth = Math.floor(percent(done, total) / 10);
      if (tenth > lastTenth || now - lastDraw >= lineEveryMs) {
        lastLine = line(last);
        stream.write(lastLine);
        lastTenth = tenth;
        lastDraw = now;
      }
    },
    finish() {
      if (tty) stream.write(`${bar(last)}\n`);
      else if (line(last) !== lastLine) stream.write(line(last));
    },
  };
}
