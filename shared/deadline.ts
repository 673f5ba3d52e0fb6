/** Settles like `p`, or rejects with "<what> timed out" after `ms`; the timer never outlives the race. */
export function withDeadline<T>(p: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
