import * as t from 'io-ts';
import * as E from 'fp-ts/Either';
import { pipe } from 'fp-ts/function';
import { PathReporter } from 'io-ts/PathReporter';

interface LogPositionBrand {
  readonly LogPosition: unique symbol;
}

/**
 * Position of a record in a change log: its sequence number, 1 for the first record ever
 * appended, +1 per record, never reused. 0 means "before every record". Positions compare
 * with `<`, so "applied up to here" is a single number.
 */
export const LogPosition = t.brand(
  t.number,
  (n): n is t.Branded<number, LogPositionBrand> => Number.isSafeInteger(n) && n >= 0,
  'LogPosition',
);
export type LogPosition = t.TypeOf<typeof LogPosition>;

/** Only for values we computed ourselves (sequence arithmetic); input is decoded with the codec. */
export const unsafeLogPosition = (n: number): LogPosition => n as LogPosition;

const SafeNonNegative = t.refinement(t.number, (n) => Number.isSafeInteger(n) && n >= 0, 'SafeNonNegativeInteger');

/** `<dir>/checkpoint.json`: everything at or before `position` was applied by the consumer. */
export const CheckpointFile = t.type({ version: t.literal(1), position: SafeNonNegative });
export type CheckpointFile = t.TypeOf<typeof CheckpointFile>;

/** `<dir>/txid.json`: every id at or below `reserved` may have been handed out already. */
export const TxIdFile = t.type({ version: t.literal(1), reserved: SafeNonNegative });
export type TxIdFile = t.TypeOf<typeof TxIdFile>;

/** Content of a lock file: who holds it, and a token that tells two handles of one process apart. */
export const LockFile = t.type({
  version: t.literal(1),
  pid: t.number,
  host: t.string,
  token: t.string,
});
export type LockFile = t.TypeOf<typeof LockFile>;

/** Parses JSON text and decodes it; the Left is a message for people. */
export const decodeJson = <A>(codec: t.Decoder<unknown, A>, text: string): E.Either<string, A> =>
  pipe(
    E.tryCatch(
      () => JSON.parse(text) as unknown,
      (e) => `not JSON: ${e instanceof Error ? e.message : String(e)}`,
    ),
    E.flatMap((json) =>
      pipe(
        codec.decode(json),
        E.mapLeft((errors) => PathReporter.report(E.left(errors)).join('; ')),
      ),
    ),
  );
