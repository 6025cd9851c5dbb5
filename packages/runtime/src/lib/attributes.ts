import * as E from 'fp-ts/Either';
import { parseSourceUri } from './source-uri';

/**
 * The configuration attributes an administrator can set (`zxbackup config set`), with their
 * defaults and validation. Values are stored as strings, as zxsuite does.
 */
export interface AttributeSpec {
  readonly description: string;
  readonly defaultValue?: string;
  /** Returns the normalized value, or why it is not acceptable. */
  readonly validate: (value: string) => E.Either<string, string>;
}

const bool = (value: string): E.Either<string, string> => {
  const v = value.trim().toUpperCase();
  return v === 'TRUE' || v === 'FALSE' ? E.right(v) : E.left('expected TRUE or FALSE');
};

const days = (value: string): E.Either<string, string> =>
  /^\d{1,5}$/.test(value.trim()) ? E.right(String(Number(value.trim()))) : E.left('expected a whole number of days (0 = keep forever)');

const time = (value: string): E.Either<string, string> => {
  const [, hh = '', mm = ''] = /^(\d{1,2}):(\d{2})$/.exec(value.trim()) ?? [];
  return hh !== '' && Number(hh) < 24 && Number(mm) < 60
    ? E.right(`${hh.padStart(2, '0')}:${mm}`)
    : E.left('expected a time of day HH:MM (24h, local time)');
};

const WEEKDAYS = ['SUNDAY', 'MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY'];
const weekday = (value: string): E.Either<string, string> => {
  const v = value.trim().toUpperCase();
  const found = WEEKDAYS.find((d) => d === v || d.slice(0, 3) === v);
  return found ? E.right(found[0] + found.slice(1).toLowerCase()) : E.left('expected a day of the week (Sunday ... Saturday)');
};

const oneOf =
  (...allowed: string[]) =>
  (value: string): E.Either<string, string> => {
    const found = allowed.find((a) => a.toLowerCase() === value.trim().toLowerCase());
    return found ? E.right(found) : E.left(`expected one of ${allowed.join(', ')}`);
  };

const any = (value: string): E.Either<string, string> => E.right(value);

export const ATTRIBUTES: Readonly<Record<string, AttributeSpec>> = {
  ZxBackup_Source: {
    description: 'The mail server to back up, e.g. maildir:/var/vmail or maildir:/var/vmail?passwd=/etc/dovecot/users',
    validate: (v) =>
      E.map(() => v.trim())(parseSourceUri(v)),
  },
  ZxBackup_RealTimeScanner: { description: 'Record every change as it happens (TRUE/FALSE)', defaultValue: 'TRUE', validate: bool },
  ZxBackup_DataRetentionDays: { description: 'Days a deleted item is kept (0 = forever)', defaultValue: '30', validate: days },
  ZxBackup_AccountRetentionDays: { description: 'Days a deleted account is kept (0 = forever)', defaultValue: '30', validate: days },
  ZxBackup_ScanOperationScheduling: { description: 'Run the daily SmartScan and weekly purge (TRUE/FALSE)', defaultValue: 'TRUE', validate: bool },
  ZxBackup_SmartScanTime: { description: 'Time of the daily SmartScan, HH:MM local time', defaultValue: '04:00', validate: time },
  ZxBackup_PurgeDay: { description: 'Day of the week the purge runs with the SmartScan', defaultValue: 'Sunday', validate: weekday },
  ZxBackup_SmartScanOnStart: { description: 'Run a SmartScan when the service starts (TRUE/FALSE)', defaultValue: 'FALSE', validate: bool },
  ZxBackup_NotificationLevel: {
    description: 'Lowest level that is notified: Information, Warning, Error, Critical',
    defaultValue: 'Information',
    validate: oneOf('Information', 'Warning', 'Error', 'Critical'),
  },
  ZxBackup_NotificationMail: { description: 'Comma-separated addresses that receive notifications by e-mail', validate: any },
  ZxBackup_NotificationSmtpUrl: { description: 'SMTP server for notification mail, e.g. smtp://127.0.0.1:25', validate: any },
  ZxBackup_NotificationFrom: { description: 'Sender address of notification mail', defaultValue: 'zxbackup@localhost', validate: any },
  ZxBackup_NotificationWebhook: { description: 'URL that receives notifications as a JSON POST', validate: any },
};

export const attributeNames = (): ReadonlyArray<string> => Object.keys(ATTRIBUTES).sort();

/** Finds an attribute by name, case-insensitively, as zxsuite accepts them. */
export const lookupAttribute = (name: string): E.Either<string, { readonly name: string; readonly spec: AttributeSpec }> => {
  const found = Object.entries(ATTRIBUTES).find(([k]) => k.toLowerCase() === name.trim().toLowerCase());
  return found
    ? E.right({ name: found[0], spec: found[1] })
    : E.left(`unknown attribute "${name}"; known attributes: ${attributeNames().join(', ')}`);
};

/** The effective value: the stored one, else the default. */
export const effectiveValue = (stored: Readonly<Record<string, string>>, name: string): string | undefined =>
  stored[name] ?? ATTRIBUTES[name]?.defaultValue;
