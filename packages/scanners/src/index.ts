export const packageName = '@zxbackup/scanners';
