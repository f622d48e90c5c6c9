/** The error of type `type` a promise rejects with (the test fails if it resolves or fails otherwise). */
export async function rejection<E extends Error>(p: Promise<unknown>, type: abstract new (...args: never[]) => E): Promise<E> {
  try {
    await p;
  } catch (e) {
    if (e instanceof type) return e;
    throw e;
  }
  throw new Error(`expected a rejection with ${type.name}`);
}
