import * as fs from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/Either';
import type * as Nodemailer from 'nodemailer';

/**
 * Notifications (the seed's notification level): each event has a level; events below
 * `ZxBackup_NotificationLevel` are not sent. The log sink always receives everything.
 */
export const LEVELS = ['Information', 'Warning', 'Error', 'Critical'] as const;
export type Level = (typeof LEVELS)[number];

export type NotificationEvent =
  | 'operation.started'
  | 'operation.finished'
  | 'operation.failed'
  | 'coherency.problems'
  | 'purge.result'
  | 'scanner.stopped'
  | 'volume.unreachable';

export interface Notification {
  readonly level: Level;
  readonly event: NotificationEvent;
  readonly subject: string;
  readonly details: Readonly<Record<string, unknown>>;
  readonly at: number;
}

/** Where notifications go. A failing sink never stops the others (it is reported to the log). */
export interface NotificationSink {
  readonly name: string;
  send(n: Notification): Promise<void>;
}

export const levelRank = (l: Level): number => LEVELS.indexOf(l);

export interface Notifier {
  notify(n: Omit<Notification, 'at'>): Promise<void>;
}

export const makeNotifier = (deps: {
  readonly minimumLevel: () => Level;
  readonly log: (line: string) => void;
  readonly sinks: ReadonlyArray<NotificationSink>;
  readonly now?: () => number;
}): Notifier => ({
  notify: async (partial) => {
    const n: Notification = { ...partial, at: (deps.now ?? Date.now)() };
    deps.log(`[${n.level}] ${n.event}: ${n.subject}`);
    if (levelRank(n.level) < levelRank(deps.minimumLevel())) return;
    await Promise.all(
      deps.sinks.map(async (sink) => {
        try {
          await sink.send(n);
        } catch (e) {
          deps.log(`[Warning] notification sink ${sink.name} failed: ${(e as Error).message}`);
        }
      }),
    );
  },
});

/** E-mail over SMTP to the configured addresses. `smtpUrl` like `smtp://127.0.0.1:25`. */
export const makeMailSink = (config: { readonly smtpUrl: string; readonly from: string; readonly to: ReadonlyArray<string> }): NotificationSink => {
  // nodemailer loads only where mail is configured: it costs ~0.2 s at every command's start.
  const transport = (require('nodemailer') as typeof Nodemailer).createTransport(config.smtpUrl);
  return {
    name: 'mail',
    send: async (n) => {
      await transport.sendMail({
        from: config.from,
        to: [...config.to],
        subject: `[zxbackup ${n.level}] ${n.subject}`,
        text: `${n.subject}\n\nEvent: ${n.event}\nLevel: ${n.level}\nAt: ${new Date(n.at).toISOString()}\n\n${JSON.stringify(n.details, null, 2)}\n`,
      });
    },
  };
};

/** A JSON POST of the notification to a URL. A non-2xx answer is a failure. */
export const makeWebhookSink = (config: { readonly url: string; readonly timeoutMs?: number }): NotificationSink => ({
  name: 'webhook',
  send: async (n) => {
    const response = await fetch(config.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(n),
      signal: AbortSignal.timeout(config.timeoutMs ?? 10_000),
    });
    if (!response.ok) throw new Error(`webhook answered HTTP ${response.status}`);
  },
});

/**
 * The notifier of a backup path, configured by its attributes at the time of each
 * notification (so `config set` takes effect without a restart): level
 * `ZxBackup_NotificationLevel`, mail to `ZxBackup_NotificationMail` through
 * `ZxBackup_NotificationSmtpUrl`, webhook `ZxBackup_NotificationWebhook`. Every notification
 * is also appended to `<path>/log/notifications.log` (the log sink, always on).
 */
export const makeConfiguredNotifier = (
  bp: { readonly root: string; readonly config: { list(): () => Promise<E.Either<unknown, Readonly<Record<string, string>>>> } },
  options: { readonly log?: (line: string) => void; readonly now?: () => number } = {},
): Notifier => {
  const logFile = path.join(bp.root, 'log', 'notifications.log');
  const appendLog = (line: string) => {
    try {
      fs.mkdirSync(path.dirname(logFile), { recursive: true });
      fs.appendFileSync(logFile, `${new Date((options.now ?? Date.now)()).toISOString()} ${line}\n`);
    } catch {
      // The log sink must never fail an operation; the other sinks still run.
    }
    options.log?.(line);
  };
  return {
    notify: async (n) => {
      const listed = await bp.config.list()();
      const config = E.isRight(listed) ? listed.right : {};
      const to = (config['ZxBackup_NotificationMail'] ?? '').split(',').map((a) => a.trim()).filter(Boolean);
      const smtpUrl = config['ZxBackup_NotificationSmtpUrl'];
      const webhook = config['ZxBackup_NotificationWebhook'];
      const sinks: NotificationSink[] = [
        ...(to.length > 0 && smtpUrl ? [makeMailSink({ smtpUrl, from: config['ZxBackup_NotificationFrom'] ?? 'zxbackup@localhost', to })] : []),
        ...(webhook ? [makeWebhookSink({ url: webhook })] : []),
      ];
      const level = (LEVELS as ReadonlyArray<string>).includes(config['ZxBackup_NotificationLevel'] ?? '')
        ? (config['ZxBackup_NotificationLevel'] as Level)
        : 'Information';
      await makeNotifier({ minimumLevel: () => level, log: appendLog, sinks, ...(options.now ? { now: options.now } : {}) }).notify(n);
    },
  };
};
