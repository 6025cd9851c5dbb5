import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '@zxbackup/runtime';
import type { CliDeps } from '../lib/command';
import { getAccountInfoCommand, getAvailableAccountsCommand, getBackupInfoCommand, getItemCommand } from './info.command';
import { doItemRestoreCommand, doItemSearchCommand, doRestoreOnNewAccountCommand, doUndeleteCommand } from './restore.command';
import { doAccountScanCommand, doSmartScanCommand } from './scan.command';
import { realTimeScannerCommand } from './real-time-scanner.command';
import { doCoherencyCheckCommand, doPurgeCommand } from './maintenance.command';
import {
  generateEncryptionKeyCommand,
  listBucketsCommand,
  migrateBackupVolumeCommand,
  retrieveMetadataFromArchiveCommand,
  setBackupVolumeCommand,
} from './volume.command';

type AnyCommand = CommandModule<GlobalArgs, GlobalArgs>;

/** Commands that wire the scanners, restore, retention and volumes. */
export const commandsFromModules = (deps: CliDeps): ReadonlyArray<AnyCommand> =>
  [
    doSmartScanCommand(deps),
    doAccountScanCommand(deps),
    realTimeScannerCommand(deps),
    getBackupInfoCommand(deps),
    getAvailableAccountsCommand(deps),
    getAccountInfoCommand(deps),
    getItemCommand(deps),
    doRestoreOnNewAccountCommand(deps),
    doUndeleteCommand(deps),
    doItemRestoreCommand(deps),
    doItemSearchCommand(deps),
    doPurgeCommand(deps),
    doCoherencyCheckCommand(deps),
    setBackupVolumeCommand(deps),
    migrateBackupVolumeCommand(deps),
    listBucketsCommand(deps),
    retrieveMetadataFromArchiveCommand(deps),
    generateEncryptionKeyCommand(deps),
  ] as unknown as ReadonlyArray<AnyCommand>;
