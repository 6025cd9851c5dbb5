export const packageName = '@zxbackup/transaction-log';
