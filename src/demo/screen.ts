/**
 * Where the demo writes: report lines, and one progress line that a terminal rewrites in
 * place. Piped to a file or another program, each progress update is a line of its own.
 */

/** The demo's output. */
export interface DemoOutput {
  /** Prints one line of the report. */
  print(line: string): void;
  /** Shows the progress line, replacing the previous one on a terminal. */
  progress(line: string): void;
}

/** Output to a stream (stdout by default), rewriting the progress line when it is a TTY. */
export function streamOutput(stream: NodeJS.WriteStream = process.stdout): DemoOutput {
  let pending = false;
  const endProgress = () => {
    if (pending) stream.write('\n');
    pending = false;
  };
  return {
    print(line) {
      endProgress();
      stream.write(`${line}\n`);
    },
    progress(line) {
      if (!stream.isTTY) return void stream.write(`${line}\n`);
      // Carriage return, then erase to the end of the line (ECMA-48 EL).
      stream.write(`\r${line}\x1b[K`);
      pending = true;
    },
  };
}

/** Output that goes nowhere (tests). */
export const silentOutput: DemoOutput = { print: () => {}, progress: () => {} };

/** One progress sample: where the run stands. */
export interface Progress {
  elapsedMs: number;
  injected: number;
  delivered: number;
  deferred: number;
  bounced: number;
  expired: number;
  /** Recipients in the queues: waiting for a retry or in delivery. */
  waiting: number;
  /** Deliveries per second since the previous sample. */
  rate: number;
}

/** "[ 12s] injected 3000  delivered 2410  deferred 1310  ...  412 msg/s" */
export function formatProgress(p: Progress): string {
  const seconds = `${Math.round(p.elapsedMs / 1000)}s`.padStart(4);
  const fields = [
    `injected ${p.injected}`,
    `delivered ${p.delivered}`,
    `deferred ${p.deferred}`,
    `bounced ${p.bounced}`,
    `expired ${p.expired}`,
    `waiting ${p.waiting}`,
  ];
  return `[${seconds}] ${fields.join('  ')}  ${Math.round(p.rate)} msg/s`;
}
