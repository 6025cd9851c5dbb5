import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { makeMailSink, makeNotifier, makeWebhookSink, type Level } from './notifications';

/** A real SMTP listener on loopback that keeps what it receives. */
const startSmtp = async () => {
  const received: { to: string[]; data: string }[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      let data = '';
      stream.on('data', (c: Buffer) => (data += c.toString('utf8')));
      stream.on('end', () => {
        received.push({ to: session.envelope.rcptTo.map((r) => r.address), data });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as AddressInfo).port;
  return { port, received, close: () => new Promise<void>((r) => server.close(() => r())) };
};

/** A real HTTP listener on loopback that keeps the JSON bodies it receives. */
const startWebhook = async (status = 200) => {
  const bodies: unknown[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      bodies.push(JSON.parse(body));
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/hook`, bodies, close: () => new Promise<void>((r) => server.close(() => r())) };
};

describe('notifications', () => {
  it('sends mail over SMTP and a JSON webhook at or above the level, and logs everything', async () => {
    const smtp = await startSmtp();
    const hook = await startWebhook();
    const log: string[] = [];
    let level: Level = 'Warning';
    const notifier = makeNotifier({
      minimumLevel: () => level,
      log: (l) => log.push(l),
      sinks: [
        makeMailSink({ smtpUrl: `smtp://127.0.0.1:${smtp.port}`, from: 'zxbackup@example.test', to: ['admin@example.test', 'ops@example.test'] }),
        makeWebhookSink({ url: hook.url }),
      ],
      now: () => 1_700_000_000_000,
    });
    try {
      await notifier.notify({ level: 'Information', event: 'operation.started', subject: 'SmartScan started', details: {} });
      await notifier.notify({ level: 'Error', event: 'operation.failed', subject: 'SmartScan failed', details: { reason: 'disk full' } });
      level = 'Critical';
      await notifier.notify({ level: 'Error', event: 'volume.unreachable', subject: 'S3 unreachable', details: {} });

      expect(log).toHaveLength(3);
      expect(smtp.received).toHaveLength(1);
      expect(smtp.received[0]!.to).toEqual(['admin@example.test', 'ops@example.test']);
      expect(smtp.received[0]!.data).toContain('Subject: [zxbackup Error] SmartScan failed');
      expect(smtp.received[0]!.data).toContain('disk full');
      expect(hook.bodies).toEqual([
        { level: 'Error', event: 'operation.failed', subject: 'SmartScan failed', details: { reason: 'disk full' }, at: 1_700_000_000_000 },
      ]);
    } finally {
      await smtp.close();
      await hook.close();
    }
  });

  it('a failing sink is logged and does not stop the others', async () => {
    const hook = await startWebhook(500);
    const smtp = await startSmtp();
    const log: string[] = [];
    const notifier = makeNotifier({
      minimumLevel: () => 'Information',
      log: (l) => log.push(l),
      sinks: [makeWebhookSink({ url: hook.url }), makeMailSink({ smtpUrl: `smtp://127.0.0.1:${smtp.port}`, from: 'z@example.test', to: ['a@example.test'] })],
    });
    try {
      await notifier.notify({ level: 'Critical', event: 'scanner.stopped', subject: 'Real Time Scanner stopped', details: {} });
      expect(log.some((l) => l.includes('webhook failed') && l.includes('500'))).toBe(true);
      expect(smtp.received).toHaveLength(1);
    } finally {
      await hook.close();
      await smtp.close();
    }
  });
});
