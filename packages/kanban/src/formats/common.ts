/** Helpers shared by the board formats. */

/** Makes column ids unique by suffixing repeats: `[done, done]` → `[done, done_2]`. */
export function uniqueColumnIds(ids: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return ids.map((id) => {
    const count = (seen.get(id) ?? 0) + 1;
    seen.set(id, count);
    return count === 1 ? id : `${id}_${count}`;
  });
}
