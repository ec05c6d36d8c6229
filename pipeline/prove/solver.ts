// Stage 6 (solver): one long-lived cvc5 process in incremental mode, driven
// over stdin/stdout (execa). `unknown`, a timeout or any solver error is a
// failure, never a pass.
import { execa, type ResultPromise } from 'execa';
import { readSExpr, type SExpr } from './decoder.js';

export type SolverErrorCode =
  /** cvc5 exited or could not be started mid-session. */
  | 'exited'
  /** cvc5 reported an error for a command. */
  | 'solver_error'
  /** cvc5 answered unknown (or timed out): not proven. */
  | 'unknown'
  /** An answer of a shape the session does not expect. */
  | 'unexpected_answer'
  /** The cvc5 binary cannot be run. */
  | 'not_installed';

export class SolverError extends Error {
  constructor(
    readonly code: SolverErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type SatResult = 'sat' | 'unsat';

export interface SolverOptions {
  /** Per-query time limit in ms (cvc5 --tlimit-per). */
  timeoutMs?: number;
  binary?: string;
  /** Receives everything sent to the solver (for --dump-smt). */
  transcript?: (text: string) => void;
}

export const SOLVER_PRELUDE = '(set-logic ALL)\n(set-option :produce-models true)\n';

export class Cvc5 {
  private readonly proc: ResultPromise;
  private buf = '';
  private waiters: (() => void)[] = [];
  private exited: string | undefined;
  private stderr = '';

  constructor(private readonly opts: SolverOptions = {}) {
    const args = ['--lang', 'smt2', '--incremental', `--tlimit-per=${opts.timeoutMs ?? 10000}`, '--strings-exp'];
    this.proc = execa(opts.binary ?? 'cvc5', args, { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', reject: false, buffer: false });
    this.proc.stdout!.setEncoding('utf8');
    this.proc.stdout!.on('data', (d: string) => {
      this.buf += d;
      this.wake();
    });
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stderr!.on('data', (d: string) => {
      this.stderr += d;
    });
    this.proc.then(
      (r) => {
        this.exited = `cvc5 exited (code ${r.exitCode ?? r.signal})${this.stderr ? `: ${this.stderr.trim().slice(0, 500)}` : ''}`;
        this.wake();
      },
      (e: Error) => {
        this.exited = `cvc5 failed: ${e.message}`;
        this.wake();
      },
    );
    this.proc.stdin!.on('error', () => {});
    this.send(SOLVER_PRELUDE);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(text: string): void {
    if (this.exited) throw new SolverError('exited', this.exited);
    this.opts.transcript?.(text);
    this.proc.stdin!.write(text);
  }

  private async read(): Promise<SExpr> {
    for (;;) {
      const r = readSExpr(this.buf, 0);
      if (r) {
        this.buf = this.buf.slice(r.end);
        if (Array.isArray(r.expr) && r.expr[0] === 'error') throw new SolverError('solver_error', `cvc5: ${String(r.expr[1])}`);
        return r.expr;
      }
      if (this.exited) throw new SolverError('exited', this.exited);
      await new Promise<void>((res) => this.waiters.push(res));
    }
  }

  async checkSat(): Promise<SatResult> {
    this.send('(check-sat)\n');
    const r = await this.read();
    if (r === 'sat' || r === 'unsat') return r;
    throw new SolverError('unknown', `cvc5 answered ${JSON.stringify(r)} (unknown or timeout): the property is not proven`);
  }

  /** Like checkSat, but reports `unknown` instead of failing (for optional, best-effort queries). */
  async checkSatMaybe(): Promise<SatResult | 'unknown'> {
    this.send('(check-sat)\n');
    const r = await this.read();
    if (r === 'sat' || r === 'unsat' || r === 'unknown') return r;
    throw new SolverError('unexpected_answer', `cvc5 answered ${JSON.stringify(r)}`);
  }

  /** Values of the given terms in the current model, in order. */
  async getValues(terms: string[]): Promise<SExpr[]> {
    if (terms.length === 0) return [];
    this.send(`(get-value (${terms.join(' ')}))\n`);
    const r = await this.read();
    if (!Array.isArray(r) || r.length !== terms.length)
      throw new SolverError('unexpected_answer', `unexpected get-value answer: ${JSON.stringify(r).slice(0, 300)}`);
    return r.map((pair) => (pair as SExpr[])[1]);
  }

  async close(): Promise<void> {
    if (!this.exited) {
      try {
        this.proc.stdin!.end('(exit)\n');
      } catch {
        /* already gone */
      }
    }
    await this.proc.catch(() => undefined);
  }
}

export async function cvc5Version(binary = 'cvc5'): Promise<string> {
  try {
    const r = await execa(binary, ['--version']);
    return /cvc5 version (\S+)/.exec(r.stdout)?.[1] ?? 'unknown';
  } catch (err) {
    throw new SolverError('not_installed', `cannot run ${binary}: ${(err as Error).message} (install the Debian package cvc5)`);
  }
}
