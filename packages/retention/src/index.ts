export const packageName = '@zxbackup/retention';
