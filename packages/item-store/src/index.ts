export const packageName = '@zxbackup/item-store';
