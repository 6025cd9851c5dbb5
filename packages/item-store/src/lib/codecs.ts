import * as t from 'io-ts';

/*
 * The item model (the seed's "Structure of an Item"). Every persisted record is decoded
 * with these codecs on read; inside the package the types are trusted.
 */

export const FORMAT_VERSION = 1;

export interface ItemIdBrand {
  readonly ItemId: unique symbol;
}
/** An item's id, unique within its account. Safe as a file name and a LevelDB key part. */
export const ItemId = t.brand(
  t.string,
  (s): s is t.Branded<string, ItemIdBrand> => /^[A-Za-z0-9][A-Za-z0-9._=+-]{0,127}$/.test(s),
  'ItemId',
);
export type ItemId = t.TypeOf<typeof ItemId>;

export interface AccountIdBrand {
  readonly AccountId: unique symbol;
}
/**
 * An account is named by its lower-case address (`alice@example.test`). Server-wide items
 * (domains, classes of service, distribution lists) live under the pseudo-account `_server`.
 */
export const AccountId = t.brand(
  t.string,
  (s): s is t.Branded<string, AccountIdBrand> =>
    s === SERVER_ACCOUNT || /^[a-z0-9._%+-]{1,64}@[a-z0-9.-]{1,190}$/.test(s),
  'AccountId',
);
export type AccountId = t.TypeOf<typeof AccountId>;
export const SERVER_ACCOUNT = '_server';

export interface TxIdBrand {
  readonly TxId: unique symbol;
}
/** Transaction id: a positive integer, unique per backup path and strictly increasing. */
export const TxId = t.brand(
  t.number,
  (n): n is t.Branded<number, TxIdBrand> => Number.isSafeInteger(n) && n > 0,
  'TxId',
);
export type TxId = t.TypeOf<typeof TxId>;

/** Epoch milliseconds. */
export const Instant = t.number;

const Settings = t.record(t.string, t.union([t.string, t.array(t.string)]));

export const ItemKind = t.keyof({
  message: null,
  folder: null,
  contact: null,
  contactGroup: null,
  appointment: null,
  task: null,
  driveDocument: null,
  account: null,
  distributionList: null,
  domain: null,
  cos: null,
});
export type ItemKind = t.TypeOf<typeof ItemKind>;

/** An email. Its body is the blob (`digest`); flags are IMAP flags and keywords. */
export const MessageMeta = t.intersection([
  t.type({
    kind: t.literal('message'),
    folderId: ItemId,
    /** IMAP system flags (`\\Seen`, `\\Answered`, `\\Flagged`, `\\Deleted`, `\\Draft`) and keywords, sorted. */
    flags: t.array(t.string),
    /** INTERNALDATE: when the server received it (Maildir: the file's mtime). */
    receivedAt: Instant,
  }),
  t.partial({
    /** The source's own key for the message (Maildir: the file's base name). */
    sourceKey: t.string,
    subject: t.string,
    from: t.string,
    to: t.array(t.string),
    messageId: t.string,
    sentAt: Instant,
  }),
]);

export const FolderView = t.keyof({ message: null, contact: null, appointment: null, task: null, document: null });

export const FolderMeta = t.intersection([
  t.type({
    kind: t.literal('folder'),
    /** Full path with `/` as separator, decoded (`INBOX`, `Projects/2026`, `Entwürfe`). */
    path: t.string,
    view: FolderView,
  }),
  t.partial({
    sourceKey: t.string,
    subscribed: t.boolean,
    uidValidity: t.number,
  }),
]);

export const ContactMeta = t.intersection([
  t.type({ kind: t.literal('contact'), folderId: ItemId, fields: t.record(t.string, t.string) }),
  t.partial({ sourceKey: t.string, uid: t.string }),
]);

export const ContactGroupMeta = t.intersection([
  t.type({ kind: t.literal('contactGroup'), folderId: ItemId, name: t.string, members: t.array(t.string) }),
  t.partial({ sourceKey: t.string, uid: t.string }),
]);

const CalendarCommon = t.partial({
  sourceKey: t.string,
  location: t.string,
  organizer: t.string,
  attendees: t.array(t.string),
  recurrence: t.string,
});

export const AppointmentMeta = t.intersection([
  t.type({
    kind: t.literal('appointment'),
    folderId: ItemId,
    uid: t.string,
    summary: t.string,
    startsAt: Instant,
    endsAt: Instant,
  }),
  CalendarCommon,
]);

export const TaskMeta = t.intersection([
  t.type({ kind: t.literal('task'), folderId: ItemId, uid: t.string, summary: t.string, status: t.string }),
  t.partial({ dueAt: Instant, priority: t.number, percentComplete: t.number }),
  CalendarCommon,
]);

export const DriveDocumentMeta = t.intersection([
  t.type({ kind: t.literal('driveDocument'), folderId: ItemId, name: t.string, version: t.number }),
  t.partial({ sourceKey: t.string, contentType: t.string, author: t.string }),
]);

export const AccountMeta = t.intersection([
  t.type({
    kind: t.literal('account'),
    address: t.string,
    status: t.keyof({ active: null, locked: null, closed: null, maintenance: null }),
    settings: Settings,
  }),
  t.partial({
    displayName: t.string,
    /** The password hash as the source stores it (e.g. `{SHA512-CRYPT}$6$...`); never a clear password. */
    passwordHash: t.string,
    cosId: t.string,
    quotaBytes: t.number,
    aliases: t.array(t.string),
    sourceKey: t.string,
  }),
]);

export const DistributionListMeta = t.intersection([
  t.type({ kind: t.literal('distributionList'), address: t.string, members: t.array(t.string), settings: Settings }),
  t.partial({ displayName: t.string, sourceKey: t.string }),
]);

export const DomainMeta = t.intersection([
  t.type({ kind: t.literal('domain'), name: t.string, settings: Settings }),
  t.partial({ sourceKey: t.string }),
]);

export const CosMeta = t.intersection([
  t.type({ kind: t.literal('cos'), name: t.string, settings: Settings }),
  t.partial({ sourceKey: t.string }),
]);

/** The metadata of one item in one state: a tagged union on `kind`. */
export const ItemMeta = t.union([
  MessageMeta,
  FolderMeta,
  ContactMeta,
  ContactGroupMeta,
  AppointmentMeta,
  TaskMeta,
  DriveDocumentMeta,
  AccountMeta,
  DistributionListMeta,
  DomainMeta,
  CosMeta,
]);
export type ItemMeta = t.TypeOf<typeof ItemMeta>;
export type MessageMeta = t.TypeOf<typeof MessageMeta>;
export type FolderMeta = t.TypeOf<typeof FolderMeta>;
export type ContactMeta = t.TypeOf<typeof ContactMeta>;
export type ContactGroupMeta = t.TypeOf<typeof ContactGroupMeta>;
export type AppointmentMeta = t.TypeOf<typeof AppointmentMeta>;
export type TaskMeta = t.TypeOf<typeof TaskMeta>;
export type DriveDocumentMeta = t.TypeOf<typeof DriveDocumentMeta>;
export type AccountMeta = t.TypeOf<typeof AccountMeta>;
export type DistributionListMeta = t.TypeOf<typeof DistributionListMeta>;
export type DomainMeta = t.TypeOf<typeof DomainMeta>;
export type CosMeta = t.TypeOf<typeof CosMeta>;

export const Op = t.keyof({ create: null, update: null, delete: null });
export type Op = t.TypeOf<typeof Op>;

const Sha256Hex = t.refinement(t.string, (s) => /^[0-9a-f]{64}$/.test(s), 'Sha256Hex');

/**
 * One state of an item: `{ tx, start, end, op, ...metadata, digest?, size? }` (the seed's
 * "photograph"). `end` is null while the state is current. A `delete` entry repeats the last
 * metadata, so a deleted item still says which folder it was deleted from.
 */
export const Transaction = t.intersection([
  t.type({ tx: TxId, start: Instant, end: t.union([Instant, t.null]), op: Op }),
  ItemMeta,
  t.partial({ digest: Sha256Hex, size: t.number }),
]);
export type Transaction = t.TypeOf<typeof Transaction>;

/** An item's whole history, ordered by `start` (and `tx`). */
export const History = t.array(Transaction);
export type History = t.TypeOf<typeof History>;
