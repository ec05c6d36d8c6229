// Everything the demo starts registers how to undo it here; undo runs in reverse
// order and carries on past a failing step, reporting what it could not undo.
export class Cleanup {
  #steps: Array<{ what: string; undo: () => Promise<void> | void }> = [];

  add(what: string, undo: () => Promise<void> | void): void {
    this.#steps.push({ what, undo });
  }

  /** Runs every undo step (last registered first); returns what failed. */
  async run(): Promise<string[]> {
    const failed: string[] = [];
    for (const { what, undo } of this.#steps.reverse()) {
      try {
        await undo();
      } catch (err) {
        failed.push(`${what}: ${(err as Error).message}`);
      }
    }
    this.#steps = [];
    return failed;
  }
}
